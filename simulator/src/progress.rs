//! Progress bars for long runs: sends dispatched out of the plan, with the
//! rate achieved, acks, errors and reconnects read from the device tasks'
//! live counters. Hidden with `--quiet` or when stderr is not a terminal
//! (logs and CI output stay clean; the summary is printed either way).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::wire::{Live, LiveSnapshot};

/// Whether to draw at all.
pub fn visible(quiet: bool, stderr_is_terminal: bool) -> bool {
    !quiet && stderr_is_terminal
}

/// The bar's message: rate over the last interval, then totals.
pub fn message(prev: &LiveSnapshot, now: &LiveSnapshot, interval: Duration) -> String {
    let secs = interval.as_secs_f64();
    let rate = if secs > 0.0 {
        now.fixes.saturating_sub(prev.fixes) as f64 / secs
    } else {
        0.0
    };
    format!(
        "{rate:.0} fixes/s, {} published, {} acked, {} errors, {} reconnects, {} failed connects",
        now.published, now.acked, now.errors, now.reconnects, now.connect_errors
    )
}

/// A bar over `total` sends, hidden unless [`visible`].
pub fn bar(mode: &str, total: u64, quiet: bool) -> ProgressBar {
    if !visible(quiet, std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} sends  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(mode.to_string());
    bar
}

/// Updates `bar` from `live` four times a second until aborted.
pub fn follow(bar: ProgressBar, live: Arc<Live>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        // The first tick is immediate: start measuring from it.
        tick.tick().await;
        let mut prev = live.snapshot();
        let mut at = Instant::now();
        loop {
            tick.tick().await;
            let now = live.snapshot();
            let t = Instant::now();
            bar.set_position(now.dispatched);
            bar.set_message(message(&prev, &now, t - at));
            (prev, at) = (now, t);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_is_hidden_when_quiet_or_not_a_terminal() {
        assert!(visible(false, true));
        assert!(!visible(true, true));
        assert!(!visible(false, false));
        assert!(bar("load", 10, true).is_hidden());
    }

    #[test]
    fn message_shows_rate_acks_and_errors() {
        let prev = LiveSnapshot {
            fixes: 100,
            ..LiveSnapshot::default()
        };
        let now = LiveSnapshot {
            dispatched: 400,
            published: 400,
            fixes: 400,
            acked: 390,
            errors: 2,
            reconnects: 20,
            connect_errors: 1,
        };
        assert_eq!(
            message(&prev, &now, Duration::from_millis(500)),
            "600 fixes/s, 400 published, 390 acked, 2 errors, 20 reconnects, 1 failed connects"
        );
        assert!(message(&prev, &now, Duration::ZERO).starts_with("0 fixes/s"));
    }
}
