//! Helper programs the tests run beside the server (a relying party, a webhook receiver): killed
//! when dropped, and their JSON lines read one at a time, in order, with a deadline.

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc::Receiver;

use serde_json::Value;

/// A child process killed (and reaped) when dropped, whatever the test did.
pub struct StopOnDrop(pub std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON lines a child prints, as they come (other lines are skipped).
pub fn lines_of(stdout: std::process::ChildStdout) -> Receiver<Value> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<Value>(&line) {
                if send.send(json).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

/// The next line, waiting up to a minute: a child that says nothing fails the test, naming
/// what it was waiting for.
pub fn next_line(lines: &Receiver<Value>, waiting_for: &str) -> Value {
    tokio::task::block_in_place(|| lines.recv_timeout(std::time::Duration::from_secs(60)))
        .unwrap_or_else(|_| panic!("the receiver printed nothing while waiting for {waiting_for}"))
}
