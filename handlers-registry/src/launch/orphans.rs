//! Handlers left running by a launcher that died (`kill -9`, power cut of a
//! container): found by the report file their environment names, and killed
//! with their process group before the work is handed out again.
//!
//! The obvious alternative, `PR_SET_PDEATHSIG` in a `pre_exec` hook, forces
//! `fork` instead of `posix_spawn`; in a server whose address space holds
//! wasmtime's reservations that costs ~7 ms per launch. Reaping once at
//! start-up costs nothing per launch.

use std::path::Path;

/// Kill every process (and its group) whose `POP_REPORT_FILE` lies under
/// `report_dir`. Returns how many were killed. Linux only (`/proc`);
/// elsewhere nothing is found.
pub fn kill_orphans(report_dir: &Path) -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let needle = format!("{}={}", crate::report::REPORT_FILE_ENV, report_dir.display());
        let me = std::process::id();
        let mut killed = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            // Unreadable (another user's process, or gone): not ours.
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let ours = environ.split(|b| *b == 0).any(|var| var.starts_with(needle.as_bytes()));
            if ours && let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) only sends signals. The handler leads its own process group
                // (see `run_process`); the group takes its children along.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                killed += 1;
            }
        }
        killed
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = report_dir;
        0
    }
}
