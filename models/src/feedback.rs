//! Labels fed back into the history, point in time: what analysts, customers and chargebacks
//! confirmed becomes a feature of the next event that shares a device, a network or a payee
//! with a confirmed fraudulent session, or that comes from an account labelled a mule.
//!
//! Every session records the entities it used (`s:en`: its devices, /24s and the payees it
//! added or paid, scored by event time). A fraud label that names a session reads them back
//! ([`reads`]) and marks each one (`lf:{entity}`, the label's id at the label's own `ts`:
//! [`writes`]); an account-level mule label marks the account (`u:lm`). Events count those
//! marks in a window ending at their own `ts`, so a label counts only from when it became known,
//! live and in replay alike. The enricher applies labels from the labels topic as they come;
//! the trainer's replay and `trainer backfill` apply the lake's labels in `ts` order among the
//! events ([`crate::features::Replayer::label`]).

use crate::features::DAY_MS;
use crate::history::{Key, Op, OpResult, Text};
use crate::{Label, LabelKind};

/// How long a session's entities are kept for a label to find (chargebacks take weeks). A
/// memory bound: a label later than this after its session marks nothing.
pub const SESSION_ENTITIES_MS: i64 = 35 * DAY_MS;
const SESSION_ENTITIES_TTL_S: u32 = 36 * 86_400;
/// Most entities a session records (a session hopping over many addresses keeps its newest).
pub const MAX_SESSION_ENTITIES: u32 = 32;
/// How far back an event counts the fraud labels on its device, network or payee.
pub const LABELS_MS: i64 = 90 * DAY_MS;
const LABELS_TTL_S: u32 = 91 * 86_400;
/// …and the mule labels on its account.
pub const MULE_MS: i64 = 180 * DAY_MS;
const MULE_TTL_S: u32 = 181 * 86_400;
/// Most labels kept per entity (a counted feature saturates long before).
const MAX_LABELS: u32 = 256;

/// The key of a session's entities.
pub fn session_entities<'a>(session: impl Into<Text<'a>>) -> Key<'a> {
    Key::new("s:en", session)
}

/// The key of the fraud labels on an entity (`d:…`, `n:…`, `p:…`, as the session recorded it).
pub fn entity_labels(entity: Text<'_>) -> Key<'_> {
    Key::new("lf", entity)
}

/// The key of the mule labels on an account.
pub fn mule_labels<'a>(user: impl Into<Text<'a>>) -> Key<'a> {
    Key::new("u:lm", user)
}

/// An entity's membership in its session's set, at event time `ts`.
pub fn record_entity<'a>(session: Key<'a>, entity: Text<'a>, ts: i64) -> Op<'a> {
    Op::Add {
        key: session,
        member: entity,
        ts,
        keep_after: ts - SESSION_ENTITIES_MS,
        max_len: MAX_SESSION_ENTITIES,
        ttl_s: SESSION_ENTITIES_TTL_S,
    }
}

/// The labels of `labels` (sorted by `ts`) that an event at `ts` must see applied first: those
/// known by then. The one rule by which replay and `trainer backfill` place labels among events.
pub fn due<'a, 'l, L: Iterator<Item = &'l Label>>(
    labels: &'a mut std::iter::Peekable<L>,
    ts: i64,
) -> impl Iterator<Item = &'l Label> + use<'a, 'l, L> {
    std::iter::from_fn(move || labels.next_if(|l| l.ts <= ts))
}

/// What a label reads first: the entities of the session it names, up to its own time. Nothing
/// for a legitimate label or one that names no session.
pub fn reads(label: &Label) -> Vec<Op<'_>> {
    match (&label.session_id, label.is_fraud) {
        (Some(s), true) => {
            vec![Op::Range { key: session_entities(s.as_str()), from: label.ts - SESSION_ENTITIES_MS, to: label.ts }]
        }
        _ => Vec::new(),
    }
}

/// What a label writes, given what its [`reads`] returned: its id on each entity of the
/// session, and on the account when it names a mule.
pub fn writes<'a>(label: &'a Label, read: &'a [OpResult]) -> Vec<Op<'a>> {
    if !label.is_fraud {
        return Vec::new();
    }
    let mark = |key: Key<'a>, window: i64, ttl_s: u32| Op::Add {
        key,
        member: Text::from(label.label_id.as_str()),
        ts: label.ts,
        keep_after: label.ts - window,
        max_len: MAX_LABELS,
        ttl_s,
    };
    let mut out: Vec<Op> = read
        .iter()
        .flat_map(OpResult::range)
        .map(|(entity, _)| mark(entity_labels(Text::from(&**entity)), LABELS_MS, LABELS_TTL_S))
        .collect();
    if label.kind == Some(LabelKind::Mule) {
        out.push(mark(mule_labels(label.user_id.as_str()), MULE_MS, MULE_TTL_S));
    }
    out
}
