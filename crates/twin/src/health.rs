//! What each part of a running twin is doing: up, restarting or down, since when, how often it
//! was restarted and the last error. The supervisors write it (dynalite's in
//! [`crate::dynamodb::SupervisedDynalite`], the tasks' in `twin.rs`); `/_twin/status` and
//! `orderflow status` show it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The component name of the DynamoDB server.
pub const DYNAMODB: &str = "dynamodb";
/// The component name of the API server.
pub const API: &str = "api";

/// A component's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Running.
    Up,
    /// Failed; its supervisor is starting it again.
    Restarting,
    /// Stopped, and not being started again.
    Down,
}

impl State {
    /// The word `orderflow status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Restarting => "restarting",
            State::Down => "down",
        }
    }
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its state.
    pub state: State,
    /// Since when it is in that state (RFC 3339, UTC).
    pub since: String,
    /// How often it was started again after a failure.
    pub restarts: u64,
    /// The last failure, if any (never record data: exit codes, panic and error messages).
    pub last_error: Option<String>,
}

/// The health of every component, shared by the supervisors and the status route.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, Component>>>);

impl Health {
    /// `name` is up (after a restart: one more restart counted).
    pub fn up(&self, name: &str) {
        self.set(name, State::Up, None, now());
    }

    /// `name` failed with `error` and is being started again.
    pub fn restarting(&self, name: &str, error: &str) {
        self.set(name, State::Restarting, Some(error), now());
    }

    /// `name` stopped for good (at shutdown, or a failure it cannot recover from).
    pub fn down(&self, name: &str, error: Option<&str>) {
        self.set(name, State::Down, error, now());
    }

    /// `name`'s state, if it was ever reported.
    pub fn get(&self, name: &str) -> Option<Component> {
        self.0.lock().expect("not poisoned").get(name).cloned()
    }

    /// Every component.
    pub fn snapshot(&self) -> BTreeMap<String, Component> {
        self.0.lock().expect("not poisoned").clone()
    }

    fn set(&self, name: &str, state: State, error: Option<&str>, at: DateTime<Utc>) {
        let mut components = self.0.lock().expect("not poisoned");
        let since = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        match components.get_mut(name) {
            Some(component) => {
                if component.state == State::Restarting && state == State::Up {
                    component.restarts += 1;
                }
                if component.state != state {
                    component.state = state;
                    component.since = since;
                }
                if let Some(error) = error {
                    component.last_error = Some(error.to_owned());
                }
            }
            None => {
                components.insert(
                    name.to_owned(),
                    Component {
                        state,
                        since,
                        restarts: 0,
                        last_error: error.map(str::to_owned),
                    },
                );
            }
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_counted_when_the_component_is_up_again_and_keeps_its_error() {
        let health = Health::default();
        health.up(DYNAMODB);
        let first = health.get(DYNAMODB).unwrap();
        assert_eq!(
            (first.state, first.restarts, first.last_error),
            (State::Up, 0, None)
        );
        health.restarting(DYNAMODB, "exited with signal 9");
        health.restarting(DYNAMODB, "address in use");
        let restarting = health.get(DYNAMODB).unwrap();
        assert_eq!(restarting.state, State::Restarting);
        assert_eq!(restarting.restarts, 0);
        assert_eq!(restarting.last_error.as_deref(), Some("address in use"));
        health.up(DYNAMODB);
        let up = health.get(DYNAMODB).unwrap();
        assert_eq!(up.state, State::Up);
        assert_eq!(up.restarts, 1);
        assert_eq!(up.last_error.as_deref(), Some("address in use"));
        health.up(DYNAMODB);
        assert_eq!(
            health.get(DYNAMODB).unwrap().restarts,
            1,
            "up twice is one state"
        );
        health.down(DYNAMODB, None);
        assert_eq!(health.get(DYNAMODB).unwrap().state, State::Down);
        assert_eq!(health.snapshot().len(), 1);
    }
}
