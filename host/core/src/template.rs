//! Template phase of reference resolution (spec §2.3, §3.7 `run`): turns an
//! `AgendaTemplate` plus a run payload into an `Agenda`.

use serde_json::Value;

use crate::model::{Agenda, AgendaTemplate};
use crate::params::ParamsMap;
use crate::reference::{self, ReferenceContext};

/// The run payload is exposed under both names.
pub const PAYLOAD_PARAM: &str = "pop.payload";
pub const TRANSFORM_REQUEST_PARAM: &str = "pop.transformRequest";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("AgendaTemplate has no agenda.")]
    MissingAgenda,
    /// A static parameter uses one of the payload's names.
    #[error("Parameter [{0}] is duplicated.")]
    DuplicateParameter(String),
    /// Tokens naming a template parameter that still could not be substituted:
    /// a pointer absent from the value (without `?`), or an object/array
    /// inside a composite string.
    #[error("Template references could not be resolved: {}", .0.join(", "))]
    UnresolvedReferences(Vec<String>),
    #[error("The agenda produced by the template is invalid: {0}")]
    InvalidAgenda(String),
}

/// Static parameters plus the payload, without copying either.
struct TemplateParams<'a> {
    statics: Option<&'a ParamsMap>,
    payload: &'a Value,
}

impl ReferenceContext for TemplateParams<'_> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        if name == PAYLOAD_PARAM || name == TRANSFORM_REQUEST_PARAM {
            return Some(self.payload);
        }
        self.statics?.get(name)
    }
}

/// Substitutes the template's parameters into its `agenda`.
///
/// Tokens naming something that is not a template parameter (operation
/// outputs, executor built-ins) stay as text for the executor. Unlike POP,
/// a token that names a template parameter but cannot be substituted is an
/// error instead of text that would deadlock the run (spec §9.6).
///
/// An empty agenda title takes the template's title; the request `cid` is
/// the caller's to apply.
pub fn expand_template(template: &AgendaTemplate, payload: &Value) -> Result<Agenda, TemplateError> {
    let statics = template.static_parameters.as_ref();
    if let Some(statics) = statics {
        for key in [PAYLOAD_PARAM, TRANSFORM_REQUEST_PARAM] {
            if statics.contains_key(key) {
                return Err(TemplateError::DuplicateParameter(key.to_owned()));
            }
        }
    }
    let body = match &template.agenda {
        None | Some(Value::Null) => return Err(TemplateError::MissingAgenda),
        Some(body) => body,
    };

    let (resolved, refs) = reference::resolve(body, &TemplateParams { statics, payload });
    if !refs.invalid.is_empty() {
        return Err(TemplateError::UnresolvedReferences(refs.invalid.into_iter().collect()));
    }

    let mut agenda: Agenda =
        serde_json::from_value(resolved).map_err(|e| TemplateError::InvalidAgenda(e.to_string()))?;
    if agenda.envelope.title.as_deref().is_none_or(str::is_empty) {
        agenda.envelope.title.clone_from(&template.envelope.title);
    }
    Ok(agenda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(statics: Value, agenda: Value) -> AgendaTemplate {
        AgendaTemplate {
            static_parameters: serde_json::from_value(statics).unwrap(),
            agenda: Some(agenda),
            ..Default::default()
        }
    }

    #[test]
    fn payload_pointer_from_the_spec() {
        let t = template(json!(null), json!({"params": {"payload": "@<pop.payload::title>"}}));
        let agenda = expand_template(&t, &json!({"title": "xyz"})).unwrap();
        assert_eq!(agenda.params.unwrap().get("payload"), Some(&json!("xyz")));
    }

    #[test]
    fn substitutes_statics_payload_and_defaults_keeping_types() {
        let t = template(
            json!({
                "customer": "acme",
                "retries": 3,
                "inputs": {"video": ["a.mp4", "b.mp4"], "hd": true}
            }),
            json!({
                "customerId": "@<customer>",
                "title": "job for @<pop.transformRequest::/who?nobody>",
                "params": {"maximumAttempts": "@<retries>", "flag": "@<inputs::/hd>"},
                "operations": [
                    {
                        "name": "first",
                        "type": "sample",
                        "payload": {
                            "inputs": "@<inputs>",
                            "request": "@<pop.payload>",
                            "second": "@<inputs::/video/1>",
                            "optional": "@<pop.payload::/missing?>",
                            "fallback": "@<pop.payload::/missing?plan-b>",
                            "count": "n=@<retries>"
                        }
                    },
                    {
                        "name": "second",
                        "type": "sample",
                        "payload": {
                            "later": "@<first.out::/x>",
                            "mixed": "@<first.out::/y> and @<customer>",
                            "builtin": "@<pop.agendaId>"
                        }
                    }
                ]
            }),
        );
        let payload = json!({"title": "t", "n": [1, 2]});
        let agenda = expand_template(&t, &payload).unwrap();
        assert_eq!(agenda.envelope.customer_id.as_deref(), Some("acme"));
        assert_eq!(agenda.envelope.title.as_deref(), Some("job for nobody"));
        let params = agenda.params.as_ref().unwrap();
        assert_eq!(params.get("maximumAttempts"), Some(&json!(3)));
        assert_eq!(params.get("flag"), Some(&json!(true)));
        let ops = agenda.operations();
        assert_eq!(
            ops[0].payload,
            Some(json!({
                "inputs": {"video": ["a.mp4", "b.mp4"], "hd": true},
                "request": {"title": "t", "n": [1, 2]},
                "second": "b.mp4",
                "optional": null,
                "fallback": "plan-b",
                "count": "n=3"
            }))
        );
        assert_eq!(
            ops[1].payload,
            Some(json!({
                "later": "@<first.out::/x>",
                "mixed": "@<first.out::/y> and acme",
                "builtin": "@<pop.agendaId>"
            }))
        );
    }

    #[test]
    fn a_parameter_can_stand_for_a_whole_list() {
        let t = template(
            json!({"ops": [{"name": "only", "type": "sample"}]}),
            json!({"operations": "@<ops>"}),
        );
        let agenda = expand_template(&t, &json!({})).unwrap();
        assert_eq!(agenda.operations()[0].name(), "only");
    }

    #[test]
    fn title_defaults_to_the_template_title() {
        let mut t = template(json!({}), json!({"title": ""}));
        t.envelope.title = Some("from template".into());
        let agenda = expand_template(&t, &json!({})).unwrap();
        assert_eq!(agenda.envelope.title.as_deref(), Some("from template"));

        let t2 = template(json!({}), json!({"title": "own"}));
        assert_eq!(
            expand_template(&t2, &json!({})).unwrap().envelope.title.as_deref(),
            Some("own")
        );
    }

    #[test]
    fn payload_names_cannot_be_static_parameters() {
        for key in [PAYLOAD_PARAM, TRANSFORM_REQUEST_PARAM] {
            let t = template(json!({ key: 1 }), json!({}));
            let err = expand_template(&t, &json!({})).unwrap_err();
            assert_eq!(err, TemplateError::DuplicateParameter(key.into()));
            assert_eq!(err.to_string(), format!("Parameter [{key}] is duplicated."));
        }
    }

    #[test]
    fn unresolvable_template_references_are_errors() {
        let t = template(
            json!({"obj": {"a": 1}}),
            json!({
                "params": {
                    "x": "@<pop.payload::/missingField>",
                    "y": "before @<obj> after",
                    "z": "@<obj::/nope>",
                    "later": "@<op.out::/x>"
                }
            }),
        );
        let err = expand_template(&t, &json!({"title": "t"})).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnresolvedReferences(vec![
                "@<obj::/nope>".into(),
                "@<obj>".into(),
                "@<pop.payload::/missingField>".into(),
            ])
        );
        assert_eq!(
            err.to_string(),
            "Template references could not be resolved: @<obj::/nope>, @<obj>, @<pop.payload::/missingField>"
        );
    }

    #[test]
    fn missing_or_malformed_agenda() {
        let mut t = template(json!({}), json!({}));
        t.agenda = None;
        assert_eq!(expand_template(&t, &json!({})), Err(TemplateError::MissingAgenda));
        assert_eq!(
            TemplateError::MissingAgenda.to_string(),
            "AgendaTemplate has no agenda."
        );
        t.agenda = Some(Value::Null);
        assert_eq!(expand_template(&t, &json!({})), Err(TemplateError::MissingAgenda));

        let bad = template(json!({"n": 5}), json!({"operations": "@<n>"}));
        assert!(matches!(
            expand_template(&bad, &json!({})),
            Err(TemplateError::InvalidAgenda(_))
        ));
    }
}
