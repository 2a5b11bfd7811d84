//! The raw bindings `wit-bindgen` generates from `wit/plugin.wit`, one module per world.
//!
//! Plugin authors normally use the traits of [`crate::scheduler`], [`crate::insight_matcher`],
//! [`crate::visibility`] and [`crate::handler`] instead. The raw `Guest` traits are here for
//! plugins that need the exact WIT shapes; export an implementation with the world's raw macro,
//! e.g. `pop_plugin_sdk::bindings::scheduler::__export_scheduler_raw!(MyGuest);`.
//!
//! Each world's type section is embedded by its export macro in the plugin crate, so a plugin
//! carries only the world it exports (this crate's own sections describe imports only, which
//! the component linker drops when unused).

/// Bindings of the `scheduler` world. `pending-agenda` and `schedule-output` are mapped onto
/// [`pop_core::scheduling::PendingAgenda`] and [`pop_core::scheduling::ScheduleOutput`], so a
/// decision crosses the boundary without conversion.
#[allow(missing_docs, clippy::all)] // generated code
pub mod scheduler {
    wit_bindgen::generate!({
        world: "scheduler",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_scheduler_raw",
        default_bindings_module: "pop_plugin_sdk::bindings::scheduler",
        runtime_path: "pop_plugin_sdk::__private::wit_bindgen::rt",
        disable_custom_section_link_helpers: true,
        with: {
            "pop:plugin/types@0.2.0/pending-agenda": pop_core::scheduling::PendingAgenda,
            "pop:plugin/types@0.2.0/schedule-output": pop_core::scheduling::ScheduleOutput,
        },
    });
}

/// Bindings of the `insight-matcher` world.
#[allow(missing_docs, clippy::all)] // generated code
pub mod insight_matcher {
    wit_bindgen::generate!({
        world: "insight-matcher",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_insight_matcher_raw",
        default_bindings_module: "pop_plugin_sdk::bindings::insight_matcher",
        runtime_path: "pop_plugin_sdk::__private::wit_bindgen::rt",
        disable_custom_section_link_helpers: true,
    });
}

/// Bindings of the `visibility-policy` world.
#[allow(missing_docs, clippy::all)] // generated code
pub mod visibility_policy {
    wit_bindgen::generate!({
        world: "visibility-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_visibility_policy_raw",
        default_bindings_module: "pop_plugin_sdk::bindings::visibility_policy",
        runtime_path: "pop_plugin_sdk::__private::wit_bindgen::rt",
        disable_custom_section_link_helpers: true,
    });
}

/// Bindings of the `handler` world, including the `progress` import.
#[allow(missing_docs, clippy::all)] // generated code
pub mod handler {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_handler_raw",
        default_bindings_module: "pop_plugin_sdk::bindings::handler",
        runtime_path: "pop_plugin_sdk::__private::wit_bindgen::rt",
        disable_custom_section_link_helpers: true,
    });
}
