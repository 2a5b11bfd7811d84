//! Submission-time agenda checks (POP's `AgendaValidator`, spec §2.5).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::model::Agenda;
use crate::reference::{self, OUT_SUFFIX};

/// POP reports at most this many issues in one message.
pub const MAX_ISSUES: usize = 10;

/// Missing references with this prefix are built-ins supplied at run time.
const BUILTIN_TOKEN_PREFIX: &str = "@<pop.";

/// Why an agenda was rejected; `Display` is POP's message, word for word.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgendaValidationError {
    #[error("The customerId field must be specified.")]
    MissingCustomerId,
    #[error("No operations specified in Agenda.")]
    NoOperations,
    #[error("Operations must have names.")]
    UnnamedOperation,
    #[error("Operation names must be unique.")]
    DuplicateOperationNames,
    /// Every issue found; the message shows the first [`MAX_ISSUES`].
    #[error("Validation Issues detected: {}", issues_text(.0))]
    Issues(Vec<String>),
}

fn issues_text(issues: &[String]) -> String {
    let mut text = issues[..issues.len().min(MAX_ISSUES)].join(",");
    if issues.len() > MAX_ISSUES {
        text.push_str("[Truncating additional issues]");
    }
    text
}

/// Java's `String.trim()` strips every char up to U+0020, not Unicode spaces.
fn is_java_blank(s: &str) -> bool {
    s.chars().all(|c| c <= ' ')
}

/// Checks an agenda as POP does on POST (and so on `run`).
///
/// Differences from POP: `.out` is stripped only as a suffix, `dependsOn`
/// edges take part in the cycle check (a `dependsOn` cycle deadlocks the
/// executor just as a reference cycle does), and the cycle check is one
/// linear pass instead of a walk per operation.
pub fn validate_agenda(agenda: &Agenda) -> Result<(), AgendaValidationError> {
    if agenda.envelope.customer_id.as_deref().is_none_or(is_java_blank) {
        return Err(AgendaValidationError::MissingCustomerId);
    }
    let ops = agenda.operations();
    if ops.is_empty() {
        return Err(AgendaValidationError::NoOperations);
    }
    let mut lower = HashSet::with_capacity(ops.len());
    for op in ops {
        if op.name().is_empty() {
            return Err(AgendaValidationError::UnnamedOperation);
        }
        if !lower.insert(op.name().to_lowercase()) {
            return Err(AgendaValidationError::DuplicateOperationNames);
        }
    }

    // POP resolves each payload against a context holding `<op>.out = {}`
    // and reports the missing references. A token is missing exactly when
    // its NAME is not such an output, so the names alone decide; pointer
    // misses (invalid references) are tolerated since outputs are unknown.
    let names: HashSet<&str> = ops.iter().map(|op| op.name()).collect();
    let is_output = |name: &str| name.strip_suffix(OUT_SUFFIX).is_some_and(|op| names.contains(op));
    let mut issues = Vec::new();
    for op in ops {
        let Some(payload) = &op.payload else { continue };
        let mut missing = BTreeSet::new();
        reference::for_each_token(payload, |tok| {
            if !is_output(tok.name) {
                missing.insert(tok.text);
            }
        });
        if missing.iter().any(|m| !m.starts_with(BUILTIN_TOKEN_PREFIX)) {
            // POP lists every missing reference, built-ins included.
            let list: Vec<&str> = missing.into_iter().collect();
            issues.push(format!(
                "Invalid references found in operation [{}] payload: {}",
                op.name(),
                list.join(",")
            ));
        }
    }

    if issues.is_empty() {
        let on_cycle = operations_on_cycles(agenda);
        for (op, cyclic) in ops.iter().zip(on_cycle) {
            if cyclic {
                issues.push(format!(
                    "There is a circular reference involving the operation: {}",
                    op.name()
                ));
            }
        }
    }

    if issues.is_empty() {
        Ok(())
    } else {
        Err(AgendaValidationError::Issues(issues))
    }
}

/// For each operation (in order), whether it lies on a dependency cycle,
/// i.e. can reach itself. Names that are not operations of the agenda are
/// ignored. Iterative Tarjan: O(ops + edges), no recursion.
pub fn operations_on_cycles(agenda: &Agenda) -> Vec<bool> {
    let ops = agenda.operations();
    let n = ops.len();
    let index_of: HashMap<&str, usize> = ops.iter().enumerate().map(|(i, op)| (op.name(), i)).collect();
    let adj: Vec<Vec<usize>> = ops
        .iter()
        .map(|op| {
            reference::operation_dependencies(op)
                .iter()
                .filter_map(|d| index_of.get(d.as_str()).copied())
                .collect()
        })
        .collect();

    const UNSEEN: usize = usize::MAX;
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut on_cycle = vec![false; n];
    let mut scc_stack: Vec<usize> = Vec::new();
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut counter = 0;

    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        scc_stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));

        while let Some(&mut (v, ref mut edge)) = calls.last_mut() {
            if let Some(&w) = adj[v].get(*edge) {
                *edge += 1;
                if w == v {
                    on_cycle[v] = true;
                } else if order[w] == UNSEEN {
                    order[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    scc_stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            calls.pop();
            if low[v] == order[v] {
                let mut size = 0;
                let mut members = Vec::new();
                while let Some(w) = scc_stack.pop() {
                    on_stack[w] = false;
                    members.push(w);
                    size += 1;
                    if w == v {
                        break;
                    }
                }
                if size > 1 {
                    for w in members {
                        on_cycle[w] = true;
                    }
                }
            }
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
        }
    }
    on_cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Operation;
    use serde_json::{Value, json};

    fn op(name: &str, payload: Value) -> Operation {
        Operation {
            name: Some(name.into()),
            op_type: Some("sample".into()),
            payload: Some(payload),
            ..Default::default()
        }
    }

    fn agenda(ops: Vec<Operation>) -> Agenda {
        let mut a = Agenda {
            operations: Some(ops),
            ..Default::default()
        };
        a.envelope.customer_id = Some("cust".into());
        a
    }

    fn message(a: &Agenda) -> String {
        validate_agenda(a).unwrap_err().to_string()
    }

    #[test]
    fn customer_id_is_required() {
        let mut a = agenda(vec![op("a", json!({}))]);
        for blank in [None, Some(""), Some(" \t\n")] {
            a.envelope.customer_id = blank.map(str::to_owned);
            assert_eq!(validate_agenda(&a), Err(AgendaValidationError::MissingCustomerId));
        }
        assert_eq!(message(&a), "The customerId field must be specified.");
    }

    #[test]
    fn operations_are_required() {
        let mut a = agenda(vec![]);
        assert_eq!(message(&a), "No operations specified in Agenda.");
        a.operations = None;
        assert_eq!(validate_agenda(&a), Err(AgendaValidationError::NoOperations));
    }

    #[test]
    fn operations_need_names() {
        let unnamed = Operation {
            payload: Some(json!({})),
            ..Default::default()
        };
        assert_eq!(
            message(&agenda(vec![op("a", json!({})), unnamed])),
            "Operations must have names."
        );
        assert_eq!(message(&agenda(vec![op("", json!({}))])), "Operations must have names.");
    }

    #[test]
    fn names_are_unique_ignoring_case() {
        let a = agenda(vec![op("Sample.1", json!({})), op("sAMPLE.1", json!({}))]);
        assert_eq!(message(&a), "Operation names must be unique.");
    }

    #[test]
    fn unknown_references_are_rejected_but_builtins_accepted() {
        let ok = agenda(vec![
            op("a", json!({"p": "@<pop.payload>", "id": "x-@<pop.agendaId>"})),
            op(
                "b",
                json!({"in": "@<a.out::/some/where>", "whole": "@<a.out>", "t": "@<a.out::/x> mixed"}),
            ),
        ]);
        assert_eq!(validate_agenda(&ok), Ok(()));

        let bad = agenda(vec![
            op("a", json!({"x": "@<b.out::/x>", "p": "@<pop.payload>"})),
            op("b", json!(["@<a>", "@<d.out>", "@<c.out>"])),
            op("c", json!("@<pop.operationName>")),
        ]);
        assert_eq!(
            message(&bad),
            "Validation Issues detected: \
             Invalid references found in operation [b] payload: @<a>,@<d.out>"
        );
        // Reference names are case-sensitive even though op names are unique ignoring case.
        let case = agenda(vec![op("Ab", json!({})), op("b", json!("@<ab.out>"))]);
        assert_eq!(
            message(&case),
            "Validation Issues detected: Invalid references found in operation [b] payload: @<ab.out>"
        );
    }

    #[test]
    fn reference_issues_list_builtins_too() {
        let a = agenda(vec![op("a", json!(["@<pop.payload::/x>", "@<nope.out>"]))]);
        assert_eq!(
            message(&a),
            "Validation Issues detected: \
             Invalid references found in operation [a] payload: @<nope.out>,@<pop.payload::/x>"
        );
    }

    #[test]
    fn cycles_are_reported_per_operation_in_order() {
        let two = agenda(vec![
            op("a", json!("@<b.out::/x>")),
            op("b", json!("@<a.out>")),
            op("c", json!("@<a.out>")),
        ]);
        assert_eq!(
            message(&two),
            "Validation Issues detected: \
             There is a circular reference involving the operation: a,\
             There is a circular reference involving the operation: b"
        );

        let three = agenda(vec![
            op("start", json!({})),
            op("x", json!({"in": "@<z.out::/v?1>", "s": "@<start.out>"})),
            op("y", json!({"in": "pre-@<x.out::/v>"})),
            op("z", json!(["@<y.out>"])),
            op("end", json!("@<z.out>")),
        ]);
        assert_eq!(
            message(&three),
            "Validation Issues detected: \
             There is a circular reference involving the operation: x,\
             There is a circular reference involving the operation: y,\
             There is a circular reference involving the operation: z"
        );

        let own = agenda(vec![op("a", json!({})), op("self", json!("@<self.out::/x>"))]);
        assert_eq!(
            message(&own),
            "Validation Issues detected: There is a circular reference involving the operation: self"
        );
    }

    #[test]
    fn depends_on_cycles_are_detected() {
        let mut a = op("a", json!({}));
        a.params = Some(serde_json::from_value(json!({"dependsOn": "b"})).unwrap());
        let b = op("b", json!("@<a.out>"));
        assert_eq!(operations_on_cycles(&agenda(vec![a, b])), vec![true, true]);
    }

    #[test]
    fn cycle_check_only_runs_without_other_issues() {
        let a = agenda(vec![op("a", json!("@<a.out>")), op("b", json!("@<zz.out>"))]);
        assert_eq!(
            message(&a),
            "Validation Issues detected: Invalid references found in operation [b] payload: @<zz.out>"
        );
    }

    #[test]
    fn at_most_ten_issues_are_shown() {
        let ops: Vec<Operation> = (0..12).map(|i| op(&format!("op{i}"), json!("@<ghost.out>"))).collect();
        let err = validate_agenda(&agenda(ops)).unwrap_err();
        let AgendaValidationError::Issues(issues) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(issues.len(), 12);
        let shown: Vec<String> = (0..10)
            .map(|i| format!("Invalid references found in operation [op{i}] payload: @<ghost.out>"))
            .collect();
        assert_eq!(
            err.to_string(),
            format!(
                "Validation Issues detected: {}[Truncating additional issues]",
                shown.join(",")
            )
        );

        let ten: Vec<Operation> = (0..10).map(|i| op(&format!("op{i}"), json!("@<ghost.out>"))).collect();
        assert!(!message(&agenda(ten)).contains("Truncating"));
    }

    #[test]
    fn a_long_valid_chain_passes() {
        let mut ops = vec![op("op0", json!({"seed": "@<pop.payload::/x?1>"}))];
        for i in 1..1_000 {
            ops.push(op(
                &format!("op{i}"),
                json!({
                    "in": format!("@<op{}.out::/result>", i - 1),
                    "label": format!("step {i} after @<op{}.out::/name?none>", i - 1),
                    "root": "@<op0.out>"
                }),
            ));
        }
        let a = agenda(ops);
        assert_eq!(validate_agenda(&a), Ok(()));
        assert!(operations_on_cycles(&a).iter().all(|c| !c));
    }

    #[test]
    fn a_long_cycle_is_found_without_recursion() {
        let n = 50_000;
        let ops: Vec<Operation> = (0..n)
            .map(|i| op(&format!("op{i}"), json!(format!("@<op{}.out>", (i + 1) % n))))
            .collect();
        assert!(operations_on_cycles(&agenda(ops)).iter().all(|c| *c));
    }
}
