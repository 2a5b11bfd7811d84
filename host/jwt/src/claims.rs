//! Claims → POP's caller.

use std::collections::BTreeSet;

use pop_core::visibility::Caller;
use serde_json::{Map, Value};

/// Which claims say what.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    /// The caller's id (default `sub`).
    pub user: String,
    /// The accounts (customer ids) it acts for: a list of strings, or one
    /// string of ids separated by `|` (the authorizer context's form).
    pub accounts: String,
    /// A claim that makes a super user when it is `true`; `None`: no token
    /// ever makes one.
    pub super_user: Option<String>,
    /// A claim listing the insights a puller's or executor's token serves
    /// (it then may use only the ResourcePool service, for those).
    pub insights: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".into(),
            accounts: "accounts".into(),
            super_user: None,
            insights: None,
        }
    }
}

/// Strings of a list claim, or of a `|`-separated string claim.
fn strings(value: Option<&Value>) -> BTreeSet<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(text)) => text
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

impl ClaimNames {
    /// The caller the verified `claims` stand for; `Err` says what is missing.
    pub fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, String> {
        let user = claims
            .get(&self.user)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| format!("The token has no {} claim.", self.user))?;
        let accounts = strings(claims.get(&self.accounts));
        let super_user = self
            .super_user
            .as_ref()
            .is_some_and(|claim| claims.get(claim) == Some(&Value::Bool(true)));
        let mut caller = Caller::new(user, accounts, super_user);
        if let Some(claim) = &self.insights
            && claims.contains_key(claim)
        {
            let insights = strings(claims.get(claim));
            if insights.is_empty() || super_user {
                return Err(format!(
                    "The token's {claim} claim must name insights, and a scoped token cannot be a super user."
                ));
            }
            caller = caller.scoped_to(insights);
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn accounts_come_as_a_list_or_as_the_authorizers_string() {
        let names = ClaimNames::default();
        let listed = names
            .caller(&claims(json!({"sub": "u", "accounts": ["a", "b"]})))
            .unwrap();
        let joined = names.caller(&claims(json!({"sub": "u", "accounts": "a|b"}))).unwrap();
        assert_eq!(listed.accounts, joined.accounts);
        assert!(!listed.super_user && listed.insights.is_none());
        assert!(names.caller(&claims(json!({"accounts": ["a"]}))).is_err(), "no subject");
    }

    #[test]
    fn a_super_user_only_by_a_named_claim_saying_true() {
        let token = claims(json!({"sub": "u", "isSuperUser": true}));
        assert!(
            !ClaimNames::default().caller(&token).unwrap().super_user,
            "not by default"
        );
        let names = ClaimNames {
            super_user: Some("isSuperUser".into()),
            ..ClaimNames::default()
        };
        assert!(names.caller(&token).unwrap().super_user);
        let text = claims(json!({"sub": "u", "isSuperUser": "true"}));
        assert!(!names.caller(&text).unwrap().super_user, "only the boolean true");
    }

    #[test]
    fn an_insights_claim_scopes_the_caller() {
        let names = ClaimNames {
            insights: Some("insights".into()),
            ..ClaimNames::default()
        };
        let puller = names
            .caller(&claims(json!({"sub": "p", "accounts": ["ops"], "insights": ["i1"]})))
            .unwrap();
        assert!(puller.may_serve("i1") && !puller.may_serve("i2"));
        assert!(names.caller(&claims(json!({"sub": "p", "insights": []}))).is_err());
    }
}
