//! Example tenant handler: upper-cases every string value of its JSON payload (object keys stay
//! as they are) and returns the result, reporting progress 50 % after parsing and 100 % at the
//! end.

use pop_plugin_sdk::handler::{Handler, OperationContext, report_progress};
use pop_plugin_sdk::serde_json::{self, Value};

struct Uppercase;

impl Handler for Uppercase {
    fn run(payload: &str, _context: &OperationContext) -> Result<String, String> {
        let mut value: Value = serde_json::from_str(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        report_progress(50.0, "payload parsed");
        upper_case_strings(&mut value);
        report_progress(100.0, "done");
        Ok(value.to_string())
    }
}

fn upper_case_strings(value: &mut Value) {
    match value {
        Value::String(s) => *s = s.to_uppercase(),
        Value::Array(items) => items.iter_mut().for_each(upper_case_strings),
        Value::Object(fields) => fields.values_mut().for_each(upper_case_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

pop_plugin_sdk::export_handler!(Uppercase);
