//! The handler side of POP's launch contract (spec §5.2), for handlers written in Rust.
//!
//! * [`payload`]: the `compressedEnvVar` codec (zlib, base64, segments of at most
//!   [`payload::MAX_SEGMENT`] characters), with a cap on the inflated size.
//! * [`inputs`]: the payload (`-payloadFile`, `PAYLOAD` or the compressed segments), the prior
//!   progress and the operation metadata, read through an environment lookup so tests never
//!   touch the process environment.
//! * [`report`]: the report file format (`POP_REPORT_FILE`), the local stand-in for the pod
//!   annotations, shared with the launcher in `pop-handlers-registry`.
//! * [`Reporter`]: POP's reporter (EXECUTING, `succeeded`, `failed`; COMPLETE is final), sending to
//!   the pod's own annotations (feature `kubernetes`, `MY_POD_NAME` set), the report file or the
//!   log.
//! * [`run`]: the framing every handler shares: metadata lines, the closing summary line, a
//!   panic reported as failed, `HandlerComplete` last, exit code 0 or 1.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! fn main() -> ExitCode {
//!     pop_handler::run(|inputs, reporter| {
//!         reporter.executing("working", 50.0);
//!         Ok(inputs.payload.clone().unwrap_or_default())
//!     })
//! }
//! ```

pub mod inputs;
pub mod payload;
pub mod report;
pub mod reporter;
mod run;

pub use inputs::{InputError, Inputs, Metadata};
pub use reporter::{Conclusion, Destination, Reporter};
pub use run::{END_OF_LOG, run};
