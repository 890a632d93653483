//! Fault injection. A [`FaultPlan`] holds rules, each an action (an error
//! status, latency, a truncated, malformed, HTML or empty body) and a
//! trigger (every Nth matching request, the next K, or always), optionally
//! narrowed to a method and a path prefix. Rules come from `--fault` flags
//! (see [`FaultRule::from_str`]) or from `POST /_sim/faults` at run time.

use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this status instead of calling the vendor handler. The
    /// body defaults to the vendor's own error body for that status.
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// Delay the answer by this many milliseconds, then answer normally.
    Latency { ms: u64 },
    /// Answer normally but cut the body off halfway.
    Truncate,
    /// Answer with the normal status but a body that is not valid JSON.
    Malformed,
    /// An HTML error page, as a load balancer in front of the vendor sends.
    Html { status: u16 },
    /// The normal status with an empty body.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultTrigger {
    /// Every Nth matching request (the Nth, 2Nth, ...).
    Every { n: u64 },
    /// The next K matching requests, then the rule is spent.
    Next { k: u64 },
    /// Every matching request.
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub action: FaultAction,
    pub trigger: FaultTrigger,
    /// Only requests whose path starts with this (e.g. `/api/user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only requests with this method (e.g. `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad fault `{spec}`: {reason} (expected ACTION[@TRIGGER][@PATH], e.g. `429,retry_after=2@every=5`, \
     `503@next=3@/api/user`, `latency=250@always`, `truncate@next=1`, `malformed`, `html=502`, `empty`)"
)]
pub struct ParseFaultError {
    pub spec: String,
    pub reason: String,
}

impl FromStr for FaultRule {
    type Err = ParseFaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ParseFaultError {
            spec: spec.to_owned(),
            reason,
        };
        let mut parts = spec.split('@');
        let action_text = parts.next().unwrap_or_default();
        let trigger_text = parts.next().unwrap_or("always");
        let path_prefix = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(fail("too many `@` parts".into()));
        }

        let mut fields = action_text.split(',');
        let head = fields.next().unwrap_or_default();
        let (name, value) = head.split_once('=').unwrap_or((head, ""));
        let number = |what: &str, text: &str| -> Result<u64, ParseFaultError> {
            text.parse::<u64>()
                .map_err(|_| fail(format!("{what} needs a number, got `{text}`")))
        };
        let status_of = |text: &str| -> Result<u16, ParseFaultError> {
            match text.parse::<u16>() {
                Ok(s) if (100..=599).contains(&s) => Ok(s),
                _ => Err(fail(format!("`{text}` is not an HTTP status"))),
            }
        };
        let mut action = match name {
            "status" => FaultAction::Status {
                status: status_of(value)?,
                retry_after: None,
                body: None,
                content_type: None,
            },
            n if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => FaultAction::Status {
                status: status_of(n)?,
                retry_after: None,
                body: None,
                content_type: None,
            },
            "latency" => FaultAction::Latency {
                ms: number("latency", value.trim_end_matches("ms"))?,
            },
            "truncate" => FaultAction::Truncate,
            "malformed" => FaultAction::Malformed,
            "html" => FaultAction::Html {
                status: if value.is_empty() {
                    502
                } else {
                    status_of(value)?
                },
            },
            "empty" => FaultAction::Empty,
            other => return Err(fail(format!("unknown action `{other}`"))),
        };
        for field in fields {
            match (field.split_once('='), &mut action) {
                (Some(("retry_after", v)), FaultAction::Status { retry_after, .. }) => {
                    *retry_after = Some(number("retry_after", v)?);
                }
                _ => return Err(fail(format!("unexpected option `{field}`"))),
            }
        }

        let (mode, arg) = trigger_text.split_once('=').unwrap_or((trigger_text, ""));
        let trigger = match mode {
            "always" => FaultTrigger::Always,
            "every" => match number("every", arg)? {
                0 => return Err(fail("every=0 never fires".into())),
                n => FaultTrigger::Every { n },
            },
            "next" => FaultTrigger::Next {
                k: number("next", arg)?,
            },
            other => return Err(fail(format!("unknown trigger `{other}`"))),
        };
        Ok(FaultRule {
            action,
            trigger,
            path_prefix,
            method: None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleState {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Matching requests seen by this rule.
    pub seen: u64,
    /// Times it fired.
    pub fired: u64,
}

/// The live set of rules, shared by the fault middleware and the control API.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<Vec<RuleState>>,
}

impl FaultPlan {
    pub fn new(rules: impl IntoIterator<Item = FaultRule>) -> Self {
        let plan = Self::default();
        for rule in rules {
            plan.add(rule);
        }
        plan
    }

    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(RuleState {
                rule,
                seen: 0,
                fired: 0,
            });
        }
    }

    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
        }
    }

    pub fn rules(&self) -> Vec<RuleState> {
        self.rules.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The actions that fire for this request, in rule order. Spent `next`
    /// rules are dropped.
    pub fn decide(&self, method: &str, path: &str) -> Vec<FaultAction> {
        let Ok(mut rules) = self.rules.lock() else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        for state in rules.iter_mut() {
            let rule = &state.rule;
            if rule
                .path_prefix
                .as_deref()
                .is_some_and(|p| !path.starts_with(p))
                || rule
                    .method
                    .as_deref()
                    .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            state.seen += 1;
            let fires = match rule.trigger {
                FaultTrigger::Always => true,
                FaultTrigger::Every { n } => state.seen % n.max(1) == 0,
                FaultTrigger::Next { k } => state.fired < k,
            };
            if fires {
                state.fired += 1;
                fired.push(rule.action.clone());
            }
        }
        rules.retain(|s| !matches!(s.rule.trigger, FaultTrigger::Next { k } if s.fired >= k));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let rule: FaultRule = "429,retry_after=2@every=5".parse().unwrap();
        assert_eq!(
            rule.action,
            FaultAction::Status {
                status: 429,
                retry_after: Some(2),
                body: None,
                content_type: None
            }
        );
        assert_eq!(rule.trigger, FaultTrigger::Every { n: 5 });

        let rule: FaultRule = "503@next=3@/api/user".parse().unwrap();
        assert_eq!(rule.trigger, FaultTrigger::Next { k: 3 });
        assert_eq!(rule.path_prefix.as_deref(), Some("/api/user"));

        let rule: FaultRule = "latency=250ms".parse().unwrap();
        assert_eq!(rule.action, FaultAction::Latency { ms: 250 });
        assert_eq!(rule.trigger, FaultTrigger::Always);

        assert_eq!(
            "html".parse::<FaultRule>().unwrap().action,
            FaultAction::Html { status: 502 }
        );
    }

    #[test]
    fn refuses_nonsense_with_a_reason() {
        for bad in [
            "boom",
            "429@every=0",
            "status=999",
            "latency=soon",
            "429,colour=red",
            "a@b@c@d",
        ] {
            let err = bad.parse::<FaultRule>().unwrap_err();
            assert_eq!(err.spec, bad);
        }
    }

    #[test]
    fn every_nth_and_next_k_fire_as_told() {
        let plan = FaultPlan::new([
            "500@every=3".parse().unwrap(),
            "truncate@next=2@/api/user".parse().unwrap(),
        ]);
        let fired: Vec<usize> = (0..6)
            .map(|_| plan.decide("GET", "/api/other").len())
            .collect();
        assert_eq!(fired, vec![0, 0, 1, 0, 0, 1]);
        // Requests 7 and 8: only the truncate rule fires, and then it is spent.
        assert_eq!(plan.decide("GET", "/api/user"), vec![FaultAction::Truncate]);
        assert_eq!(plan.decide("GET", "/api/user"), vec![FaultAction::Truncate]);
        assert_eq!(plan.rules().len(), 1);
        // Request 9: the every=3 rule again.
        assert_eq!(plan.decide("GET", "/api/user").len(), 1);
    }
}
