//! Who may see what (spec §3.5), as pure functions over JSON documents so the
//! same rules serve the store's scan filter, the API and the policy plugins.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::ObjectKind;

mod page;

pub use page::{InvalidPage, ObjectPage, PageColumns, PageObject};

/// The authenticated identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    /// Customer ids (accounts) the caller acts for. `*` means all.
    pub accounts: BTreeSet<String>,
    pub super_user: bool,
    /// A puller's or executor's credential: only the ResourcePool service,
    /// and only for these insights. `None`: not scoped.
    pub insights: Option<BTreeSet<String>>,
}

impl Caller {
    pub fn new(user_id: impl Into<String>, accounts: impl IntoIterator<Item = String>, super_user: bool) -> Self {
        Self {
            user_id: user_id.into(),
            accounts: accounts.into_iter().collect(),
            super_user,
            insights: None,
        }
    }

    /// This caller, limited to serving `insights` (see [`Caller::insights`]).
    pub fn scoped_to(mut self, insights: impl IntoIterator<Item = String>) -> Self {
        self.insights = Some(insights.into_iter().collect());
        self
    }

    /// Whether the caller may serve (claim, lease, report on) `insight_id`:
    /// unscoped callers may, as far as ownership goes; scoped ones only
    /// their insights.
    pub fn may_serve(&self, insight_id: &str) -> bool {
        self.insights.as_ref().is_none_or(|scope| scope.contains(insight_id))
    }

    /// The synthetic global identity used for internal calls.
    pub fn service() -> Self {
        Self::new("pop-service", [], true)
    }

    /// The synthetic identity that acts as exactly one customer.
    pub fn customer(customer_id: &str) -> Self {
        Self::new(format!("customer:{customer_id}"), [customer_id.to_string()], false)
    }

    /// The caller's only account (not `*`), for requests that leave the
    /// customer open; `None` when there are several or none.
    pub fn sole_account(&self) -> Option<&str> {
        let mut accounts = self.accounts.iter().filter(|a| a.as_str() != "*");
        match (accounts.next(), accounts.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// A global caller sees every object.
    pub fn is_global(&self) -> bool {
        self.super_user || self.accounts.contains("*")
    }

    /// CustomerVisibility: global, or one account equals the owner (case-sensitive).
    pub fn owns(&self, customer_id: Option<&str>) -> bool {
        self.is_global() || customer_id.is_some_and(|c| self.accounts.contains(c))
    }

    /// AllowedCustomerVisibility: one lower-cased account is in the
    /// (already lower-cased) allowed list.
    pub fn is_allowed_by(&self, allowed_customer_ids: &[String]) -> bool {
        self.accounts.iter().any(|account| {
            allowed_customer_ids
                .iter()
                .any(|allowed| *allowed == account.to_lowercase())
        })
    }
}

/// The rule a read of a kind is checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRule {
    /// Only the owner (or a global caller).
    Owner,
    /// Owner, or the object is global, or the caller is an allowed customer.
    /// Insights, templates and plugins are shared this way.
    Shared,
}

impl ReadRule {
    pub fn for_kind(kind: ObjectKind) -> Self {
        match kind {
            ObjectKind::Insight | ObjectKind::AgendaTemplate | ObjectKind::Plugin | ObjectKind::PluginActivation => {
                ReadRule::Shared
            }
            _ => ReadRule::Owner,
        }
    }
}

/// Sharing facts read off a stored document.
#[derive(Debug, Clone, Copy)]
pub struct Ownership<'a> {
    pub customer_id: Option<&'a str>,
    pub is_global: bool,
    pub allowed_customer_ids: Option<&'a [Value]>,
}

impl<'a> Ownership<'a> {
    pub fn of(doc: &'a Map<String, Value>) -> Self {
        Self {
            customer_id: doc.get("customerId").and_then(Value::as_str),
            is_global: doc.get("isGlobal").and_then(Value::as_bool).unwrap_or(false),
            allowed_customer_ids: doc
                .get("allowedCustomerIds")
                .and_then(Value::as_array)
                .map(Vec::as_slice),
        }
    }
}

/// May `caller` read an object with this ownership under `rule`?
pub fn can_read(caller: &Caller, rule: ReadRule, ownership: Ownership<'_>) -> bool {
    if caller.owns(ownership.customer_id) {
        return true;
    }
    match rule {
        ReadRule::Owner => false,
        ReadRule::Shared => {
            ownership.is_global
                || ownership.allowed_customer_ids.is_some_and(|allowed| {
                    caller.accounts.iter().any(|account| {
                        let account = account.to_lowercase();
                        allowed.iter().any(|a| a.as_str() == Some(account.as_str()))
                    })
                })
        }
    }
}

/// May `caller` read this stored document of `kind`?
pub fn can_read_document(caller: &Caller, kind: ObjectKind, doc: &Map<String, Value>) -> bool {
    can_read(caller, ReadRule::for_kind(kind), Ownership::of(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rules_table() {
        let acme = Caller::new("u", ["acme".to_string()], false);
        let mixed_case = Caller::new("u", ["Globex".to_string()], false);
        let star = Caller::new("u", ["*".to_string()], false);
        let admin = Caller::new("root", [], true);
        let nobody = Caller::new("x", [], false);
        let own = doc(json!({"customerId": "acme"}));
        let other = doc(json!({"customerId": "globex"}));
        let shared_global = doc(json!({"customerId": "globex", "isGlobal": true}));
        let shared_allowed = doc(json!({"customerId": "initech", "allowedCustomerIds": ["acme", "globex"]}));
        let cases: Vec<(&Caller, ObjectKind, &Map<String, Value>, bool)> = vec![
            (&acme, ObjectKind::Agenda, &own, true),
            (&acme, ObjectKind::Agenda, &other, false),
            (&acme, ObjectKind::Agenda, &shared_global, false),
            (&acme, ObjectKind::Insight, &shared_global, true),
            (&acme, ObjectKind::AgendaTemplate, &shared_allowed, true),
            (&acme, ObjectKind::Customer, &shared_allowed, false),
            // allowed ids are lower-cased on write, accounts on compare
            (&mixed_case, ObjectKind::Insight, &shared_allowed, true),
            // but ownership is case-sensitive
            (&mixed_case, ObjectKind::Agenda, &other, false),
            (&star, ObjectKind::Agenda, &other, true),
            (&admin, ObjectKind::ResourcePool, &other, true),
            (&nobody, ObjectKind::Agenda, &own, false),
            (&nobody, ObjectKind::Insight, &shared_allowed, false),
        ];
        for (caller, kind, d, expected) in cases {
            assert_eq!(can_read_document(caller, kind, d), expected, "{caller:?} {kind} {d:?}");
        }
    }
}
