//! The context one operation's payload is resolved against: the shared
//! `<name>.out` outputs plus that operation's own built-ins (spec §2.3).
//! Layering avoids copying the whole output map per operation.

use std::collections::HashMap;

use serde_json::Value;

use crate::reference::ReferenceContext;

pub(super) const AGENDA_ID: &str = "pop.agendaId";
pub(super) const OPERATION_NAME: &str = "pop.operationName";

pub(super) struct OperationContext<'a> {
    pub outputs: &'a HashMap<String, Value>,
    pub agenda_id: &'a Value,
    pub operation_name: Value,
}

impl ReferenceContext for OperationContext<'_> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        match name {
            AGENDA_ID => Some(self.agenda_id),
            OPERATION_NAME => Some(&self.operation_name),
            _ => self.outputs.get(name),
        }
    }
}
