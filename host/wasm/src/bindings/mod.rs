//! Host bindings of the plugin contract (`wit/plugin.wit`), one module per
//! contract version.
//!
//! A plugin declares the version it was built against through the names of
//! its imports and exports (`pop:plugin/types@0.1.0`, ...). When
//! `pop:plugin@0.2.0` arrives, its bindings go in a `v0_2` module next to
//! `v0_1`, the linkers get its worlds too, and [`crate::plugin::Bound`]
//! gains one variant per new world, so plugins of both versions keep running
//! side by side.

pub mod v0_1;
