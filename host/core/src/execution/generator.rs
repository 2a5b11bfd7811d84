//! Operation generators (spec §5.3.5): an operation whose params hold
//! `agenda.operation.generator` expands the DAG with the operations found in
//! its output when it succeeds.

use serde_json::Value;

use crate::model::Operation;
use crate::params::{ParamsMap, keys};

/// The generator settings of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    pub operations_pointer: String,
    pub params_pointer: Option<String>,
    /// Log the operations but do not add them.
    pub log_only: bool,
}

/// The operation's generator settings, or `None` when it is no generator. The
/// setting may be an object or that object as a JSON string (params travel
/// through string-typed tools).
pub fn generator_config(op: &Operation) -> Option<GeneratorConfig> {
    let raw = op.params.as_ref()?.get(keys::OPERATION_GENERATOR)?;
    let parsed;
    let value = match raw {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).ok()?;
            &parsed
        }
        other => other,
    };
    let settings: ParamsMap = serde_json::from_value(value.clone()).ok()?;
    Some(GeneratorConfig {
        operations_pointer: settings
            .get_string("operationsJsonPointer")
            .unwrap_or_else(|| "/operations".into()),
        params_pointer: settings.get_string("paramsJsonPointer"),
        log_only: settings.get_bool("logOnly").unwrap_or(false),
    })
}

/// The operations a succeeded generator produced, each stamped with
/// `generatedOperationParent` so a rerun can delete them (spec §3.7).
/// The list is required: its absence fails the generator.
pub(super) fn generated_operations(
    parent: &str,
    config: &GeneratorConfig,
    output: &Value,
) -> Result<Vec<Operation>, String> {
    let pointer = &config.operations_pointer;
    let list = output
        .pointer(pointer)
        .ok_or_else(|| format!("Operation generator {parent} produced no operations at {pointer}"))?;
    let mut ops: Vec<Operation> = serde_json::from_value(list.clone())
        .map_err(|e| format!("Operation generator {parent} produced invalid operations at {pointer}: {e}"))?;
    for op in &mut ops {
        op.params
            .get_or_insert_with(ParamsMap::new)
            .insert(keys::GENERATED_OPERATION_PARENT, parent);
    }
    Ok(ops)
}
