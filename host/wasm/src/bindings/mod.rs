//! Host bindings of the plugin contract, one module per contract version:
//! `v0_1` from `wit/0.1.0/plugin.wit` (frozen), `v0_2` from
//! `wit/plugin.wit` (current).
//!
//! A plugin declares the version it was built against through the names of
//! its imports (`pop:plugin/types@0.2.0`, ...) and the shape of its exports.
//! Every world's linker carries the imports of both versions, and a
//! scheduler is bound to whichever version its `schedule` export
//! type-checks against (see [`crate::plugin::Contract`]), so plugins of both
//! versions run side by side.

pub mod v0_1;
pub mod v0_2;
