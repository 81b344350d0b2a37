//! `scanlock watch`: the status table, redrawn whenever the locks change.

use std::io::IsTerminal;
use std::time::SystemTime;

use crate::cli::WatchArgs;
use crate::error::{CliError, code};
use crate::status::{self, LockView};
use crate::store::{Location, Purpose};
use crate::{duration, format};

/// Clears a terminal and moves the cursor home (ANSI).
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Polls the locks every `--interval` and prints a frame when they change, until
/// interrupted or until stdout's reader goes away.
///
/// On a terminal a frame replaces the previous one, and it is redrawn whenever its
/// text changes, so the "held" durations tick. Anywhere else frames are appended, and
/// only a change of the locks themselves makes one: a log of a quiet pipeline stays
/// short.
pub fn run(location: &Location, args: &WatchArgs) -> Result<u8, CliError> {
    // A missing root or a bad URL is an error at once; later errors (the root removed,
    // a permission changed) are shown in a frame and watching goes on.
    let mut manager = location.open(Purpose::Inspect)?;
    let tty = std::io::stdout().is_terminal();
    let mut last: Option<(Result<Vec<LockView>, CliError>, String)> = None;
    loop {
        let mut state = Ok(());
        if manager.is_none() {
            // The root had no .locks/ yet; it may have by now (or be gone).
            state = location.open(Purpose::Inspect).map(|m| manager = m);
        }
        let state = state.and_then(|()| status::snapshot(manager.as_ref(), &args.names));
        let now = SystemTime::now();
        let backend = status::backend_name(location, manager.as_ref());
        let body = match &state {
            Ok(views) => status::render(&backend, views, now),
            Err(e) => format!("{e}\n"),
        };
        let changed = match &last {
            None => true,
            Some((_, last_body)) if tty => *last_body != body,
            Some((last_state, _)) => *last_state != state,
        };
        if changed {
            let clock = format::local_clock(now);
            let frame = if tty {
                format!(
                    "{CLEAR}scanlock watch, every {}, at {clock} (Ctrl-C to quit)\n\n{body}",
                    duration::human_precise(args.interval)
                )
            } else {
                format!("--- scanlock watch {clock} ---\n{body}")
            };
            if !crate::write_stdout(frame.as_bytes())? {
                return Ok(code::OK);
            }
        }
        last = Some((state, body));
        std::thread::sleep(args.interval);
    }
}
