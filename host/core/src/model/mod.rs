//! POP's data objects with POP's JSON: lowerCamel names, epoch-millisecond
//! dates, unknown fields ignored on input, nulls omitted on output.
//!
//! Every field is optional because POP updates are sparse: an absent field in
//! a PUT body means "keep what is stored".

mod agenda;
mod kind;
mod plugin;
mod progress;
mod scheduling;
mod service;
mod tenancy;

pub use agenda::*;
pub use kind::*;
pub use plugin::*;
pub use progress::*;
pub use scheduling::*;
pub use service::*;
pub use tenancy::*;

use serde::{Deserialize, Serialize};

/// Epoch milliseconds, the way POP serializes `java.util.Date`.
pub type EpochMillis = i64;

/// Fields shared by every persisted object (`DefaultEndpointDataObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<EpochMillis>,
}

/// A persisted object: it has an envelope and lives in one store table.
pub trait DataObject: Serialize + for<'de> Deserialize<'de> + Clone + Send + Sync + 'static {
    const KIND: ObjectKind;
    fn envelope(&self) -> &Envelope;
    fn envelope_mut(&mut self) -> &mut Envelope;
}

macro_rules! data_object {
    ($ty:ty, $kind:expr) => {
        impl $crate::model::DataObject for $ty {
            const KIND: $crate::model::ObjectKind = $kind;
            fn envelope(&self) -> &$crate::model::Envelope {
                &self.envelope
            }
            fn envelope_mut(&mut self) -> &mut $crate::model::Envelope {
                &mut self.envelope
            }
        }
    };
}
pub(crate) use data_object;

/// Lower-cases `allowedCustomerIds` the way POP's setter does, so visibility
/// checks can compare lower-cased caller accounts against them.
pub fn lowercase_all(ids: &mut Option<Vec<String>>) {
    if let Some(ids) = ids {
        for id in ids.iter_mut() {
            *id = id.to_lowercase();
        }
    }
}
