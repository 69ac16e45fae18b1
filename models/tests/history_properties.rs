//! `MemoryHistory` is tuned for replay speed; here it must agree, op for op, with a plain
//! reference written for obviousness (a sorted list per set), on random sequences that include
//! out-of-order times, repeated members, trims by time and by length, and empty windows. The
//! reference knows keys and members only by their Redis text, so the fast store's structured
//! keys (family and id, prefixes, addresses rendered on demand) must name the same things.

use models::history::{Key, MemoryHistory, Op, OpResult, Starts, Text, write_addr, write_subnet};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Sorted sets as sorted `(score, member)` lists; everything else as plain maps.
#[derive(Default)]
struct Reference {
    sets: HashMap<String, Vec<(i64, String)>>,
    maps: HashMap<String, HashMap<String, i64>>,
    strings: HashMap<String, Arc<str>>,
}

impl Reference {
    fn in_window(set: Option<&Vec<(i64, String)>>, from: i64, to: i64) -> Vec<(Arc<str>, i64)> {
        set.map(|s| {
            s.iter().filter(|(sc, _)| *sc >= from && *sc <= to).map(|(sc, m)| (Arc::from(m.as_str()), *sc)).collect()
        })
        .unwrap_or_default()
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        let text = |key: &Key| key.to_string();
        match op {
            Op::Count { key, from, to } => {
                let mut n = [0; 3];
                for (n, from) in n.iter_mut().zip(from.as_slice()) {
                    *n = Self::in_window(self.sets.get(&text(key)), *from, *to).len() as u64;
                }
                OpResult::Count(n)
            }
            Op::Range { key, from, to } => OpResult::Range(Self::in_window(self.sets.get(&text(key)), *from, *to)),
            Op::Times { key, from, to } => OpResult::Times(
                Self::in_window(self.sets.get(&text(key)), *from, *to).into_iter().map(|(_, sc)| sc).collect(),
            ),
            Op::Add { key, member, ts, keep_after, max_len, .. } => {
                let set = self.sets.entry(text(key)).or_default();
                let member = member.to_string();
                match set.iter().position(|(_, m)| *m == member) {
                    Some(i) if set[i].0 >= *ts => {}
                    Some(i) => set[i].0 = *ts,
                    None => set.push((*ts, member)),
                }
                set.sort();
                set.retain(|(sc, _)| sc >= keep_after);
                let excess = set.len().saturating_sub(*max_len as usize);
                set.drain(..excess);
                if set.is_empty() {
                    self.sets.remove(&text(key));
                }
                OpResult::Done
            }
            Op::FirstSeen { key, member, ts, .. } => {
                let map = self.maps.entry(text(key)).or_default();
                match map.get(&member.to_string()) {
                    Some(t) => OpResult::Time(Some(*t)),
                    None => {
                        map.insert(member.to_string(), *ts);
                        OpResult::Time(None)
                    }
                }
            }
            Op::Lookup { key, member } => {
                OpResult::Time(self.maps.get(&text(key)).and_then(|m| m.get(&member.to_string())).copied())
            }
            Op::Swap { key, value, .. } => match self.strings.insert(text(key), value.to_string().into()) {
                Some(prev) if *prev == *value.to_string() => OpResult::Same,
                prev => OpResult::Value(prev),
            },
            Op::Get { key } => OpResult::Value(self.strings.get(&text(key)).cloned()),
        }
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// An address or network rendered as plans render it, living as long as the test (strategies
/// need `'static`).
fn rendered(write: fn(&mut String, IpAddr), ip: &str) -> Text<'static> {
    let mut s = String::new();
    write(&mut s, addr(ip));
    Text::from(&*s.leak())
}

/// Keys and members written in different ways that Redis would see as the same text (an
/// address given as text or rendered, a prefix given apart or inside the text), and pairs that
/// only a careless joining of family and id would confuse.
fn op() -> impl Strategy<Value = Op<'static>> {
    let key = prop::sample::select(vec![
        Key::new("u", "fl:x"),
        Key::new("u:fl", "x"),
        Key::new("u", "x"),
        Key::new("ip", rendered(write_addr, "10.1.2.3")),
        Key::new("ip", "10.1.2.3"),
        Key::new("sn", rendered(write_subnet, "10.1.2.3")),
        Key::new("sn", "10.1.2.0/24"),
        Key::new("sn", rendered(write_subnet, "2001:db8:1:2::7")),
    ]);
    let member = prop::sample::select(vec![
        Text::from("m1"),
        Text::from("d:m1"),
        Text::from("m1").prefixed("d:"),
        Text::from("m2"),
        rendered(write_addr, "10.1.2.3").prefixed("i:"),
        Text::from("i:10.1.2.3"),
        Text::from("m3|7.5"),
    ]);
    let ts = 0i64..100;
    prop_oneof![
        (key.clone(), prop::collection::vec(ts.clone(), 1..=3), 0i64..40).prop_map(|(key, from, len)| Op::Count {
            key,
            from: Starts::new(&from),
            to: from[0] + len - 10
        }),
        (key.clone(), ts.clone(), 0i64..40).prop_map(|(key, from, len)| Op::Range { key, from, to: from + len - 10 }),
        (key.clone(), ts.clone(), 0i64..40).prop_map(|(key, from, len)| Op::Times { key, from, to: from + len - 10 }),
        (key.clone(), member.clone(), ts.clone(), 0i64..60, 1u32..6).prop_map(|(key, member, ts, back, max_len)| {
            Op::Add { key, member, ts, keep_after: ts - back, max_len, ttl_s: 0 }
        }),
        (key.clone(), member.clone(), ts).prop_map(|(key, member, ts)| Op::FirstSeen { key, member, ts, ttl_s: 0 }),
        (key.clone(), member.clone()).prop_map(|(key, member)| Op::Lookup { key, member }),
        (key.clone(), member).prop_map(|(key, value)| Op::Swap { key, value, ttl_s: 0 }),
        key.prop_map(|key| Op::Get { key }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_memory_history_answers_every_op_as_the_plain_reference_does(ops in prop::collection::vec(op(), 1..80)) {
        let (mut fast, mut reference) = (MemoryHistory::new(), Reference::default());
        for (i, op) in ops.iter().enumerate() {
            prop_assert_eq!(fast.apply(op), reference.apply(op), "op {} of {}: {:?}", i, ops.len(), op);
        }
        prop_assert_eq!(fast.len(), reference.sets.len() + reference.maps.len() + reference.strings.len());
    }
}
