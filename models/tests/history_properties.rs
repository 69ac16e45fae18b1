//! `MemoryHistory` is tuned for replay speed; here it must agree, op for op, with a plain
//! reference written for obviousness (a sorted list per set), on random sequences that include
//! out-of-order times, repeated members, trims by time and by length, and empty windows.

use models::history::{Key, MemoryHistory, Op, OpResult};
use proptest::prelude::*;
use std::collections::HashMap;

/// Sorted sets as sorted `(score, member)` lists; everything else as plain maps.
#[derive(Default)]
struct Reference {
    sets: HashMap<Key, Vec<(i64, String)>>,
    maps: HashMap<Key, HashMap<String, i64>>,
    strings: HashMap<Key, String>,
}

impl Reference {
    fn in_window(set: Option<&Vec<(i64, String)>>, from: i64, to: i64) -> Vec<(String, i64)> {
        set.map(|s| s.iter().filter(|(sc, _)| *sc >= from && *sc <= to).map(|(sc, m)| (m.clone(), *sc)).collect())
            .unwrap_or_default()
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Count { key, from, to } => {
                OpResult::Count(Self::in_window(self.sets.get(key), *from, *to).len() as u64)
            }
            Op::Range { key, from, to } => OpResult::Range(Self::in_window(self.sets.get(key), *from, *to)),
            Op::Times { key, from, to } => {
                OpResult::Times(Self::in_window(self.sets.get(key), *from, *to).into_iter().map(|(_, sc)| sc).collect())
            }
            Op::Add { key, member, ts, keep_after, max_len, .. } => {
                let set = self.sets.entry(key.clone()).or_default();
                match set.iter().position(|(_, m)| m == member) {
                    Some(i) if set[i].0 >= *ts => {}
                    Some(i) => set[i].0 = *ts,
                    None => set.push((*ts, member.clone())),
                }
                set.sort();
                set.retain(|(sc, _)| sc >= keep_after);
                let excess = set.len().saturating_sub(*max_len);
                set.drain(..excess);
                if set.is_empty() {
                    self.sets.remove(key);
                }
                OpResult::Done
            }
            Op::FirstSeen { key, member, ts, .. } => {
                let map = self.maps.entry(key.clone()).or_default();
                match map.get(member) {
                    Some(t) => OpResult::Time(Some(*t)),
                    None => {
                        map.insert(member.clone(), *ts);
                        OpResult::Time(None)
                    }
                }
            }
            Op::Lookup { key, member } => OpResult::Time(self.maps.get(key).and_then(|m| m.get(member)).copied()),
            Op::Swap { key, value, .. } => OpResult::Value(self.strings.insert(key.clone(), value.clone())),
            Op::Get { key } => OpResult::Value(self.strings.get(key).cloned()),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec!["a", "b", "c"]).prop_map(Key::from);
    let member = prop::sample::select(vec!["m1", "m2", "m3", "m4", "m5", "m6"]).prop_map(String::from);
    let ts = 0i64..100;
    prop_oneof![
        (key.clone(), ts.clone(), 0i64..40).prop_map(|(key, from, len)| Op::Count { key, from, to: from + len - 10 }),
        (key.clone(), ts.clone(), 0i64..40).prop_map(|(key, from, len)| Op::Range { key, from, to: from + len - 10 }),
        (key.clone(), ts.clone(), 0i64..40).prop_map(|(key, from, len)| Op::Times { key, from, to: from + len - 10 }),
        (key.clone(), member.clone(), ts.clone(), 0i64..60, 1usize..6).prop_map(|(key, member, ts, back, max_len)| {
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
