//! The one rule for what a client may write into a field that belongs to
//! the server or that names another object, applied by every write path of
//! the API (POST, PUT and the services) before anything is stored:
//!
//! * **Server-assigned** fields ([`server_assigned`]) are never taken from a
//!   client: dropped from a create, and refused on an update that would
//!   change them (sending back the stored value is fine, so a client can PUT
//!   what it read).
//! * **References** ([`references`]) must name an object the caller may use
//!   in that way; an absent object and one the caller may not use answer
//!   alike, so a reference never confirms that another customer's object
//!   exists.
//! * **Ids chosen by a client** ([`check_client_id`]) live under the
//!   customer's own name (`<customerId>:<name>`), so no customer can take,
//!   or probe for, an id another customer uses. Global callers may also
//!   choose plain ids.
//!
//! `ARCHITECTURE.md` lists every such field of every kind.

use pop_core::visibility::Caller;
use pop_core::{ObjectKind, OperationProgress};
use pop_ports::{Document, Store};
use serde_json::{Value, json};

use super::body::{non_blank, str_field};
use crate::error::{AppError, AppResult};

/// What a write does to the object it names.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A new object; `doc` is the whole of it.
    Create,
    /// A sparse update of `stored`; `doc` is the patch.
    Update { stored: &'a Document },
}

/// Fields the server sets, per kind; a client cannot set or change them.
/// (`id`, `addedTime` and `updatedTime` are stamped by every write path.)
pub fn server_assigned(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        // Bound at submission: the progress it reports to and the insight
        // it was matched to. A client that could rewrite them could point
        // its agenda at another customer's progress or private queue.
        ObjectKind::Agenda => &["progressId", "agendaInsight"],
        // The insight is the agenda's; attempts are counted on completion;
        // the fencing token names the delivery allowed to record.
        // A rerun's attempt and the retry state are the server's bookkeeping.
        ObjectKind::AgendaProgress => &[
            "agendaInsight",
            "attemptsCompleted",
            "fencingToken",
            "rerunAttempt",
            "retryState",
            "nextAttemptTime",
        ],
        // Derived on read from the insights that name the pool.
        ObjectKind::ResourcePool => &["insightIds"],
        _ => &[],
    }
}

/// Fields set once, when the object is created, and never changed: they tie
/// a derived row to its parent or to its owner.
fn fixed_after_create(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Agenda => &["customerId"],
        ObjectKind::AgendaProgress => &["customerId", "agendaId"],
        ObjectKind::OperationProgress => &["customerId", "agendaProgressId", "operation"],
        _ => &[],
    }
}

/// How a referenced object must relate to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The caller owns it (writes go through it).
    Own,
    /// The caller owns it, or it is the pool the object's customer was
    /// assigned (a customer's insights run on its own pool).
    PoolFor,
}

/// A field naming another object: (field, kind named, use required).
fn references(kind: ObjectKind) -> &'static [(&'static str, ObjectKind, Use)] {
    match kind {
        ObjectKind::Customer => &[("resourcePoolId", ObjectKind::ResourcePool, Use::Own)],
        ObjectKind::Insight => &[("resourcePoolId", ObjectKind::ResourcePool, Use::PoolFor)],
        ObjectKind::AgendaProgress => &[("agendaId", ObjectKind::Agenda, Use::Own)],
        ObjectKind::OperationProgress => &[("agendaProgressId", ObjectKind::AgendaProgress, Use::Own)],
        _ => &[],
    }
}

/// Apply the rule to a client's `doc` of `kind` (the new object, or the
/// patch of an update): server-assigned fields dropped or refused, fixed
/// fields kept as they are, references checked. Derived rows take their
/// owner from the parent they name.
pub async fn check_client_write(
    store: &dyn Store,
    caller: &Caller,
    kind: ObjectKind,
    change: Change<'_>,
    doc: &mut Document,
) -> AppResult<()> {
    for field in server_assigned(kind) {
        match change {
            Change::Create => {
                doc.remove(*field);
            }
            Change::Update { stored } => keep_unchanged(doc, stored, field, "is assigned by the server")?,
        }
    }
    if let Change::Update { stored } = change {
        for field in fixed_after_create(kind) {
            keep_unchanged(doc, stored, field, "is fixed when the object is created")?;
        }
    }
    for &(field, target_kind, required) in references(kind) {
        let Some(target_id) = non_blank(doc, field).map(str::to_string) else {
            continue;
        };
        let unchanged = match change {
            Change::Update { stored } => str_field(stored, field) == Some(target_id.as_str()),
            Change::Create => false,
        };
        if unchanged {
            continue;
        }
        let owner = match change {
            Change::Update { stored } => non_blank(doc, "customerId").or_else(|| str_field(stored, "customerId")),
            Change::Create => non_blank(doc, "customerId"),
        }
        .map(str::to_string);
        let target = usable(
            store,
            caller,
            field,
            target_kind,
            &target_id,
            required,
            owner.as_deref(),
        )
        .await?;
        if kind == ObjectKind::OperationProgress {
            inherit_owner(doc, &target, field)?;
        }
    }
    Ok(())
}

/// An update may carry a fixed field only with its stored value (then it is
/// dropped from the patch).
fn keep_unchanged(patch: &mut Document, stored: &Document, field: &str, why: &str) -> AppResult<()> {
    match patch.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(given) if stored.get(field) == Some(given) => {
            patch.remove(field);
            Ok(())
        }
        Some(_) => Err(AppError::Validation(format!(
            "The {field} field {why} and cannot be changed."
        ))),
    }
}

/// The object `target_id` names, when the caller may use it as `required`;
/// otherwise one answer for absent and unusable alike.
async fn usable(
    store: &dyn Store,
    caller: &Caller,
    field: &str,
    target_kind: ObjectKind,
    target_id: &str,
    required: Use,
    owner: Option<&str>,
) -> AppResult<Document> {
    let refused = || {
        AppError::Validation(format!(
            "The {field} field names {} {target_id}, which does not exist or which you may not use.",
            display_name(target_kind)
        ))
    };
    let target = store.get(target_kind, target_id).await?.ok_or_else(refused)?;
    if caller.owns(str_field(&target, "customerId")) {
        return Ok(target);
    }
    if required == Use::PoolFor
        && let Some(owner) = owner
        && caller.owns(Some(owner))
        && assigned_pool(store, owner).await?.as_deref() == Some(target_id)
    {
        return Ok(target);
    }
    Err(refused())
}

/// The pool a customer's record assigns it.
async fn assigned_pool(store: &dyn Store, customer_id: &str) -> AppResult<Option<String>> {
    Ok(store
        .get(ObjectKind::Customer, customer_id)
        .await?
        .and_then(|c| non_blank(&c, "resourcePoolId").map(String::from)))
}

/// A derived row belongs to its parent's customer.
fn inherit_owner(doc: &mut Document, parent: &Document, field: &str) -> AppResult<()> {
    let parent_owner = str_field(parent, "customerId").unwrap_or_default().to_string();
    match non_blank(doc, "customerId") {
        Some(given) if given != parent_owner => Err(AppError::Validation(format!(
            "The customerId field must be the customerId of the object the {field} field names ({parent_owner})."
        ))),
        _ => {
            doc.insert("customerId".into(), json!(parent_owner));
            Ok(())
        }
    }
}

/// The id of a new object of `kind` when the client chose one: under the
/// object's customer (`<customerId>:<name>`), or plain for global callers.
/// Operation progress ids are derived (`<agendaProgressId>-<operation>`),
/// which is how the executor and rerun find the row.
pub fn check_client_id(caller: &Caller, kind: ObjectKind, doc: &mut Document) -> AppResult<()> {
    if kind == ObjectKind::OperationProgress {
        let (Some(progress), Some(operation)) = (non_blank(doc, "agendaProgressId"), non_blank(doc, "operation"))
        else {
            return Err(AppError::Validation(
                "The agendaProgressId and operation fields must be specified for an OperationProgress.".into(),
            ));
        };
        let derived = OperationProgress::id_for(progress, operation);
        if let Some(given) = non_blank(doc, "id")
            && given != derived
        {
            return Err(AppError::Validation(format!(
                "The id of an OperationProgress is assigned by the server ({derived}); leave it out."
            )));
        }
        doc.insert("id".into(), json!(derived));
        return Ok(());
    }
    if kind == ObjectKind::Customer {
        // A customer's id is its customerId, which the caller must own.
        return Ok(());
    }
    let Some(id) = non_blank(doc, "id") else {
        return Ok(());
    };
    let customer_id = non_blank(doc, "customerId").unwrap_or_default();
    match id.split_once(':') {
        Some((prefix, name)) if prefix == customer_id && !name.is_empty() => Ok(()),
        None if caller.is_global() => Ok(()),
        _ => Err(AppError::Validation(format!(
            "The id of a new {} must be {customer_id}:<name> (its customerId, a colon and a name of yours), \
             or be left out for the server to assign one: ids are shared by every customer, and only names \
             under your own customer id are sure to be yours.",
            display_name(kind)
        ))),
    }
}

/// The user-facing name of a kind, as in POP's messages.
pub fn display_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::AgendaProgress => "AgendaProgress",
        ObjectKind::OperationProgress => "OperationProgress",
        ObjectKind::InsightScheduleInfo => "InsightScheduleInfo",
        other => other.table(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn client_ids_live_under_the_customer() {
        let acme = Caller::customer("acme");
        let admin = Caller::service();
        let cases = [
            (
                &acme,
                ObjectKind::Insight,
                json!({"customerId": "acme", "id": "acme:q"}),
                true,
            ),
            (&acme, ObjectKind::Insight, json!({"customerId": "acme"}), true),
            (
                &acme,
                ObjectKind::Insight,
                json!({"customerId": "acme", "id": "q"}),
                false,
            ),
            (
                &acme,
                ObjectKind::Insight,
                json!({"customerId": "acme", "id": "globex:q"}),
                false,
            ),
            (
                &acme,
                ObjectKind::Insight,
                json!({"customerId": "acme", "id": "acme:"}),
                false,
            ),
            (
                &acme,
                ObjectKind::ResourcePool,
                json!({"customerId": "acme", "id": "pool"}),
                false,
            ),
            (
                &acme,
                ObjectKind::AgendaProgress,
                json!({"customerId": "acme", "id": "p"}),
                false,
            ),
            (
                &acme,
                ObjectKind::Customer,
                json!({"customerId": "acme", "id": "acme"}),
                true,
            ),
            (
                &admin,
                ObjectKind::Insight,
                json!({"customerId": "ops", "id": "default"}),
                true,
            ),
            // Even a global caller cannot put an object under another name.
            (
                &admin,
                ObjectKind::Insight,
                json!({"customerId": "ops", "id": "acme:q"}),
                false,
            ),
        ];
        for (caller, kind, value, ok) in cases {
            let mut d = doc(value.clone());
            assert_eq!(check_client_id(caller, kind, &mut d).is_ok(), ok, "{kind} {value}");
        }
    }

    #[test]
    fn operation_progress_ids_are_derived() {
        let acme = Caller::customer("acme");
        let mut d = doc(json!({"agendaProgressId": "p1", "operation": "b"}));
        check_client_id(&acme, ObjectKind::OperationProgress, &mut d).unwrap();
        assert_eq!(d["id"], json!("p1-b"));
        let mut forged = doc(json!({"agendaProgressId": "p1", "operation": "b", "id": "other"}));
        assert!(check_client_id(&acme, ObjectKind::OperationProgress, &mut forged).is_err());
        let mut nameless = doc(json!({"agendaProgressId": "p1"}));
        assert!(check_client_id(&acme, ObjectKind::OperationProgress, &mut nameless).is_err());
    }

    #[test]
    fn fixed_fields_may_be_sent_back_unchanged() {
        let stored = doc(json!({"progressId": "p1", "title": "t"}));
        let mut same = doc(json!({"progressId": "p1", "title": "u"}));
        keep_unchanged(&mut same, &stored, "progressId", "is assigned by the server").unwrap();
        assert!(!same.contains_key("progressId"));
        let mut changed = doc(json!({"progressId": "p2"}));
        let e = keep_unchanged(&mut changed, &stored, "progressId", "is assigned by the server").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The progressId field is assigned by the server and cannot be changed."
        );
    }
}
