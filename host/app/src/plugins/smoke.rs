//! The smoke call every upload must pass: one call of the plugin's world
//! with a small, harmless input, under the normal limits, on a fresh
//! instance that is not kept.

use pop_wasm::types::{
    AgendaSummary, Caller, InsightSummary, ObjectKind, ObjectSummary, OperationContext, OperationSummary,
};
use pop_wasm::{CompiledPlugin, InstanceFor, PluginFailure, PluginKind, Runtime};

use pop_core::scheduling::{CustomerIds, ScheduleInput};

pub fn call(runtime: &Runtime, plugin: &CompiledPlugin) -> Result<(), PluginFailure> {
    match plugin.kind() {
        PluginKind::Scheduler => {
            let input = ScheduleInput {
                now_ms: 0,
                free_slots: 0,
                customers: CustomerIds::EMPTY,
                pending: &[],
                running: &[],
                config: "{}",
                state: &[],
            };
            runtime.schedule(plugin, InstanceFor::Fresh, &input).map(drop)
        }
        PluginKind::InsightMatcher => {
            let agenda = AgendaSummary {
                customer_id: "smoke".into(),
                params: Vec::new(),
                operations: vec![OperationSummary {
                    name: "smoke".into(),
                    op_type: "sample".into(),
                    params: Vec::new(),
                }],
            };
            let candidate = InsightSummary {
                id: "smoke".into(),
                title: "smoke".into(),
                owner: "smoke".into(),
                mappers: Vec::new(),
            };
            runtime
                .select_insight(plugin, InstanceFor::Fresh, &agenda, &[candidate])
                .map(drop)
        }
        PluginKind::VisibilityPolicy => {
            let caller = Caller {
                user_id: "smoke".into(),
                accounts: vec!["smoke".into()],
                super_user: false,
            };
            let object = ObjectSummary {
                kind: ObjectKind::Agenda,
                id: "smoke".into(),
                customer_id: "smoke".into(),
                is_global: false,
                allowed_customer_ids: Vec::new(),
            };
            runtime
                .decide_visibility(plugin, InstanceFor::Fresh, &caller, &[object])
                .map(drop)
        }
        PluginKind::Handler => {
            let context = OperationContext {
                agenda_id: "smoke".into(),
                operation_name: "smoke".into(),
                cid: "smoke".into(),
                last_progress: None,
            };
            runtime.run_handler(plugin, "{}", &context, &mut |_, _| {}).map(drop)
        }
    }
}
