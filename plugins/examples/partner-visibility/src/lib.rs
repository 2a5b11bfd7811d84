//! Example tenant visibility policy: POP's rules, and also every account that starts with the
//! owner's id followed by `-partner` (for owner `acme`: `acme-partner`, `acme-partner-eu`, …)
//! may read the tenant's objects. The rule needs no configuration.

use pop_plugin_sdk::visibility::{Caller, ObjectSummary, VisibilityPolicy, standard_rule};

struct PartnerVisibility;

impl VisibilityPolicy for PartnerVisibility {
    fn can_read(caller: &Caller, object: &ObjectSummary<'_>) -> bool {
        let is_partner = |account: &String| {
            account
                .strip_prefix(object.customer_id)
                .is_some_and(|rest| rest.starts_with("-partner"))
        };
        standard_rule(caller, object) || (!object.customer_id.is_empty() && caller.accounts.iter().any(is_partner))
    }
}

pop_plugin_sdk::export_visibility_policy!(PartnerVisibility);
