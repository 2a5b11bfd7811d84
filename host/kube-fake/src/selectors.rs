//! `labelSelector` and `fieldSelector`, as the API server parses them.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
//! `!k`, comma-separated (all must hold). Fields: `path=v`, `path==v`,
//! `path!=v` over the fields a pod supports (`metadata.name`,
//! `metadata.namespace`, `spec.nodeName`, `spec.restartPolicy`,
//! `spec.schedulerName`, `spec.serviceAccountName`, `status.phase`,
//! `status.podIP`); any other field is a 400, as from a real server.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelTerm>);

/// Splits on commas outside parentheses.
fn terms(text: &str) -> Vec<String> {
    let (mut out, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn set(values: &str) -> Result<Vec<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, found {values:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in terms(text) {
            let parsed = if let Some((key, values)) = term.split_once(" notin ") {
                LabelTerm::NotIn(key.trim().into(), set(values)?)
            } else if let Some((key, values)) = term.split_once(" in ") {
                LabelTerm::In(key.trim().into(), set(values)?)
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelTerm::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                LabelTerm::Equals(key.trim().into(), value.trim().into())
            } else if let Some(key) = term.strip_prefix('!') {
                LabelTerm::NotExists(key.trim().into())
            } else {
                LabelTerm::Exists(term.clone())
            };
            let key = match &parsed {
                LabelTerm::Equals(k, _)
                | LabelTerm::NotEquals(k, _)
                | LabelTerm::In(k, _)
                | LabelTerm::NotIn(k, _)
                | LabelTerm::Exists(k)
                | LabelTerm::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(' ') {
                return Err(format!("unable to parse requirement: {term:?}"));
            }
            out.push(parsed);
        }
        Ok(Self(out))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelTerm::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::NotExists(k) => label(k).is_none(),
        })
    }
}

/// The pod fields a field selector may name.
const POD_FIELDS: [&str; 8] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `text` for a resource whose selectable fields are
    /// `POD_FIELDS` (pods) or only the metadata ones (others).
    pub fn parse(text: &str, pods: bool) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in terms(text) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!("invalid selector: {term:?}; can't understand it"));
            };
            let path = path.trim();
            let known = if pods {
                POD_FIELDS.contains(&path)
            } else {
                matches!(path, "metadata.name" | "metadata.namespace")
            };
            if !known {
                return Err(format!("field label not supported: {path}"));
            }
            out.push((path.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let found = object.pointer(&pointer).and_then(Value::as_str).unwrap_or_default();
            (found == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors_table() {
        let pod = json!({"metadata": {"labels": {"app": "pop", "tier": "worker"}}});
        let cases = [
            ("app=pop", true),
            ("app==pop", true),
            ("app!=pop", false),
            ("app=pop,tier=worker", true),
            ("app=pop,tier=web", false),
            ("tier in (web, worker)", true),
            ("tier notin (web, worker)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing!=x", true),
            ("", true),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                LabelSelector::parse(selector).unwrap().matches(&pod),
                expected,
                "{selector}"
            );
        }
        assert!(LabelSelector::parse("tier in web").is_err());
    }

    #[test]
    fn field_selectors_table() {
        let pod = json!({"metadata": {"name": "p1", "namespace": "pop"}, "status": {"phase": "Failed"}});
        let parse = |s: &str| FieldSelector::parse(s, true).unwrap();
        assert!(parse("status.phase=Failed").matches(&pod));
        assert!(!parse("status.phase=Succeeded").matches(&pod));
        assert!(parse("status.phase!=Succeeded,metadata.name=p1").matches(&pod));
        assert!(FieldSelector::parse("spec.containers=x", true).is_err());
        assert!(FieldSelector::parse("status.phase=Failed", false).is_err());
    }
}
