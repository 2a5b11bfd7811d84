//! Handler plugins: run one operation in-process, payload in, result out.
//!
//! Implement [`Handler`] and export it with [`export_handler!`](crate::export_handler). Call
//! [`report_progress`] while working; the host records it as the operation's progress.

use std::marker::PhantomData;

pub use crate::bindings::handler::OperationContext;

use crate::bindings::handler as wit;

/// An operation handler.
pub trait Handler {
    /// Run the operation. `payload` is the operation's payload as JSON text, with its
    /// `@<references>` already resolved; `context` says which agenda and operation this is and,
    /// when the operation is resumed, its last reported progress. Return the operation's output
    /// as JSON text (what `@<name.out::/pointer>` references of later operations read), or an
    /// error message, which fails the operation.
    fn run(payload: &str, context: &OperationContext) -> Result<String, String>;
}

/// Reports the running operation's progress: `percent` from 0 to 100 and a short message.
pub fn report_progress(percent: f64, message: &str) {
    wit::pop::plugin::progress::report_progress(percent, message);
}

/// Pauses the handler for `milliseconds` (a real wait, unlike `std::thread::sleep`, which the
/// host's frozen clocks make return at once). The call's deadline still holds.
pub fn sleep(milliseconds: u64) {
    wit::pop::plugin::timer::sleep(milliseconds);
}

/// Adapts a [`Handler`] to the `handler` world's generated `Guest` trait.
/// Used by [`export_handler!`](crate::export_handler); not meant to be named by plugins.
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Handler> wit::Guest for Export<T> {
    fn run(payload: String, context: OperationContext) -> Result<String, String> {
        T::run(&payload, &context)
    }
}

/// Exports a [`Handler`](crate::handler::Handler) implementation as this component's `handler`
/// world. Invoke it once, at the crate root of a `cdylib`:
///
/// ```ignore
/// pop_plugin_sdk::export_handler!(MyHandler);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        const _: () = {
            type __PopHandlerExport = $crate::handler::Export<$handler>;
            $crate::bindings::handler::__export_handler_raw!(
                __PopHandlerExport with_types_in $crate::bindings::handler
            );
        };
    };
}
