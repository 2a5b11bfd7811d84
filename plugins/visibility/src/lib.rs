//! The built-in visibility policy (`pop-visibility`): POP's read rules (spec §3.5), i.e.
//! [`pop_core::visibility::can_read`] with the `Shared` rule for insights and agenda templates
//! and the `Owner` rule for every other kind, as the host's native path applies them.

use pop_plugin_sdk::visibility::{Caller, ObjectSummary, VisibilityPolicy, standard_rule};

struct PopVisibility;

impl VisibilityPolicy for PopVisibility {
    fn can_read(caller: &Caller, object: &ObjectSummary<'_>) -> bool {
        standard_rule(caller, object)
    }
}

pop_plugin_sdk::export_visibility_policy!(PopVisibility);
