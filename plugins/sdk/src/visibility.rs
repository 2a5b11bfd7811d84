//! Visibility-policy plugins: decide which of one tenant's objects a caller may see.
//!
//! Implement [`VisibilityPolicy`] and export it with
//! [`export_visibility_policy!`](crate::export_visibility_policy). The host asks only about
//! objects owned by the policy's tenant, in batches, and never filters super users. A policy
//! decides reads only: it can widen or narrow what others see of the tenant's objects, never
//! grant access to another tenant's. [`standard_rule`] is POP's own rule (spec §3.5).

use std::marker::PhantomData;

pub use crate::bindings::visibility_policy::pop::plugin::types::ObjectKind;
/// The caller, as [`pop_core`] models it: user id, accounts (`*` means all) and super-user flag.
pub use pop_core::visibility::Caller;

use crate::bindings::visibility_policy as wit;
use pop_core::visibility::{Ownership, PageColumns, ReadRule, can_read};
use serde_json::Value;

/// One of the tenant's objects, as far as visibility goes (borrowed from the page the host sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary<'a> {
    /// What it is (the same for every object of one call).
    pub kind: ObjectKind,
    /// Its `id`.
    pub id: &'a str,
    /// The owner: the policy's tenant.
    pub customer_id: &'a str,
    /// `isGlobal`: visible to every customer under POP's rules for shared kinds.
    pub is_global: bool,
    /// `allowedCustomerIds` (insights and agenda templates share with these customers).
    pub allowed_customer_ids: Vec<&'a str>,
}

/// Decides who may read a tenant's objects.
pub trait VisibilityPolicy {
    /// May `caller` read `object`?
    fn can_read(caller: &Caller, object: &ObjectSummary<'_>) -> bool;

    /// One answer per object, in order. The default asks [`Self::can_read`] for each; override
    /// it to share work across a batch. An error fails the call (the host falls back to POP's
    /// rule and records the message).
    fn decide(caller: &Caller, objects: &[ObjectSummary<'_>]) -> Result<Vec<bool>, String> {
        Ok(objects.iter().map(|object| Self::can_read(caller, object)).collect())
    }
}

/// The objects of a page: its columns read back into one summary per object
/// ([`pop_core::visibility::PageColumns::objects`], the reader of the layout the host writes).
/// A page that does not hold together (columns of different lengths, indices out of range, ends
/// out of order) is refused with the reason.
pub fn objects(page: &wit::ObjectPage) -> Result<Vec<ObjectSummary<'_>>, String> {
    let columns = PageColumns {
        strings: &page.strings,
        string_ends: &page.string_ends,
        ids: &page.ids,
        customer_ids: &page.customer_ids,
        global: &page.global,
        allowed_ends: &page.allowed_ends,
        allowed: &page.allowed,
    };
    let objects = columns.objects().map_err(|invalid| invalid.to_string())?;
    Ok(objects
        .into_iter()
        .map(|object| ObjectSummary {
            kind: page.kind,
            id: object.id,
            customer_id: object.customer_id,
            is_global: object.is_global,
            allowed_customer_ids: object.allowed_customer_ids,
        })
        .collect())
}

/// POP's read rule (spec §3.5, [`pop_core::visibility::can_read`]): the owner or a global
/// caller always; for insights and agenda templates also anyone when the object is global, and
/// the customers listed in `allowedCustomerIds` (compared lower-cased).
pub fn standard_rule(caller: &Caller, object: &ObjectSummary<'_>) -> bool {
    let rule = ReadRule::for_kind(object.kind.to_core());
    let allowed: Vec<Value> = match rule {
        ReadRule::Owner => Vec::new(),
        ReadRule::Shared => object
            .allowed_customer_ids
            .iter()
            .map(|id| Value::String(id.to_lowercase()))
            .collect(),
    };
    let ownership = Ownership {
        customer_id: Some(object.customer_id).filter(|id| !id.is_empty()),
        is_global: object.is_global,
        allowed_customer_ids: Some(&allowed),
    };
    can_read(caller, rule, ownership)
}

impl ObjectKind {
    /// The same kind in [`pop_core`]'s model.
    pub fn to_core(self) -> pop_core::ObjectKind {
        match self {
            ObjectKind::Agenda => pop_core::ObjectKind::Agenda,
            ObjectKind::AgendaTemplate => pop_core::ObjectKind::AgendaTemplate,
            ObjectKind::Customer => pop_core::ObjectKind::Customer,
            ObjectKind::Insight => pop_core::ObjectKind::Insight,
            ObjectKind::ResourcePool => pop_core::ObjectKind::ResourcePool,
            ObjectKind::AgendaProgress => pop_core::ObjectKind::AgendaProgress,
            ObjectKind::OperationProgress => pop_core::ObjectKind::OperationProgress,
        }
    }
}

/// Adapts a [`VisibilityPolicy`] to the `visibility-policy` world's generated `Guest` trait.
/// Used by [`export_visibility_policy!`](crate::export_visibility_policy); not meant to be
/// named by plugins.
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: VisibilityPolicy> wit::Guest for Export<T> {
    fn decide(caller: wit::Caller, page: wit::ObjectPage) -> Result<Vec<bool>, String> {
        let caller = Caller::new(caller.user_id, caller.accounts, caller.super_user);
        let objects = objects(&page)?;
        let answers = T::decide(&caller, &objects)?;
        if answers.len() != objects.len() {
            return Err(format!(
                "answered for {} objects, but {} were asked about",
                answers.len(),
                objects.len()
            ));
        }
        Ok(answers)
    }
}

/// Exports a [`VisibilityPolicy`](crate::visibility::VisibilityPolicy) implementation as this
/// component's `visibility-policy` world. Invoke it once, at the crate root of a `cdylib`:
///
/// ```ignore
/// pop_plugin_sdk::export_visibility_policy!(MyPolicy);
/// ```
#[macro_export]
macro_rules! export_visibility_policy {
    ($policy:ty) => {
        const _: () = {
            type __PopVisibilityPolicyExport = $crate::visibility::Export<$policy>;
            $crate::bindings::visibility_policy::__export_visibility_policy_raw!(
                __PopVisibilityPolicyExport with_types_in $crate::bindings::visibility_policy
            );
        };
    };
}
