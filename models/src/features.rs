//! The one feature definition, used live by the enricher and offline by the trainer.
//!
//! For each event, [`plan`] lists the history it reads and writes (as [`Op`]s, reads before
//! writes, so every feature describes the history *before* the event), a store executes the
//! plan, and [`compute`] turns the results into a [`FeatureVector`]. Every window is on event
//! time. Values are raw and human-readable (counts, seconds, flags); the model applies each
//! feature's [`Transform`] itself so that reasons can quote the raw value.

use crate::ClickEvent;
use crate::event::kind;
use crate::feedback;
use crate::history::{Key, MemoryHistory, Op, OpResult, Starts, Text, write_addr, write_subnet};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MINUTE_MS: i64 = 60_000;
const TEN_MINUTES_MS: i64 = 10 * MINUTE_MS;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
const DAY_S: u32 = 86_400;
/// How long per-user first-seen maps live without activity (wall clock, memory bound only).
const USER_TTL_S: u32 = 180 * DAY_S;
/// …and for a username only ever seen in failed attempts (stuffing invents millions of them).
const UNPROVEN_USER_TTL_S: u32 = 2 * DAY_S;
/// Bounds on per-key set sizes, so that an attacker hammering one IP cannot grow memory.
const MAX_SESSION_EVENTS: u32 = 256;
const MAX_SET: u32 = 10_000;
/// How far back a transfer is compared with the user's earlier ones, and how many it keeps.
const AMOUNT_HISTORY_MS: i64 = 30 * DAY_MS;
const MAX_AMOUNT_HISTORY: u32 = 200;
/// The days a user's devices logged in on, over this long, at most this many (device, day)
/// pairs, and the idle lifetime of the set (wall clock, memory bound only).
const LOGIN_DAYS_MS: i64 = 30 * DAY_MS;
const MAX_LOGIN_DAYS: u32 = 64;
const LOGIN_DAYS_TTL_S: u32 = 31 * DAY_S;
/// …and how long an idle user's month of amounts lives (wall clock, memory bound only).
const AMOUNT_HISTORY_TTL_S: u32 = 31 * DAY_S;
/// How far back a device's accounts are counted (several accounts run from one device), how
/// many it keeps, and how long an idle device's set lives (wall clock, memory bound only).
const DEVICE_USERS_MS: i64 = 30 * DAY_MS;
const MAX_DEVICE_USERS: u32 = 64;
const DEVICE_USERS_TTL_S: u32 = 31 * DAY_S;
/// How far back a payee's payers are counted at the longest, and their set's idle lifetime.
const PAYEE_PAYERS_MS: i64 = 7 * DAY_MS;
const PAYEE_PAYERS_TTL_S: u32 = 8 * DAY_S;
/// Every feature value is clamped into ±this (and NaN is 0): see the end of [`compute`].
pub const MAX_FEATURE_VALUE: f64 = 1e12;
/// Hours reported for "since the user's last credential change" when there was none known.
const NO_CHANGE_HOURS: f64 = 720.0;
/// How long after a credential change a device first seen around it still counts as the
/// change's ("reset, new device, payment" chains run over hours to days).
const CHANGED_DEVICE_MS: i64 = 7 * DAY_MS;

/// Bump when the meaning of any feature changes; the schema hash changes with it.
pub const FEATURE_SCHEMA_VERSION: u32 = 11;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Identity,
    /// `ln(1 + max(x, 0))`: for counts, amounts and durations with heavy tails.
    Log1p,
}

impl Transform {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Transform::Identity => x,
            Transform::Log1p => x.max(0.0).ln_1p(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FeatureDef {
    pub name: &'static str,
    pub transform: Transform,
    pub doc: &'static str,
}

macro_rules! features {
    ($( $id:ident = $name:literal, $tr:ident, $doc:literal; )*) => {
        /// Index of each feature in a [`FeatureVector`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum F { $($id),* }
        /// Every feature, in vector order.
        pub const FEATURES: &[FeatureDef] = &[
            $( FeatureDef { name: $name, transform: Transform::$tr, doc: $doc } ),*
        ];
    };
}

features! {
    IsLogin = "is_login", Identity, "1 if the event is a login attempt";
    IsLoginFailure = "is_login_failure", Identity, "1 if the event is a failed login";
    IsTransfer = "is_transfer", Identity, "1 if the event is a transfer";
    IsAddPayee = "is_add_payee", Identity, "1 if the event adds a payee";
    IsCredentialChange = "is_credential_change", Identity, "1 for password reset/change, profile or MFA change";
    Amount = "amount", Log1p, "transfer amount (0 when none)";
    UaAutomation = "ua_automation", Identity, "user agent names an automation tool (headless browser, curl, scripting library)";
    UserKnown = "user_known", Identity, "the user had been seen before this event";
    UserDeviceNew = "user_device_new", Identity, "first time this device is seen for the user";
    UserDeviceAgeDays = "user_device_age_days", Log1p, "days since the user first used this device";
    UserIpNew = "user_ip_new", Identity, "first time this IP is seen for the user";
    UserSubnetNew = "user_subnet_new", Identity, "first time this /24 (IPv6 /64) is seen for the user";
    UserCountryNew = "user_country_new", Identity, "first time this country is seen for the user";
    UserFailedLogins1h = "user_failed_logins_1h", Log1p, "failed logins for the user in the last hour";
    UserFailedLogins24h = "user_failed_logins_24h", Log1p, "failed logins for the user in the last 24 h";
    UserPasswordResets24h = "user_password_resets_24h", Log1p, "password resets for the user in the last 24 h";
    UserTransfers24h = "user_transfers_24h", Log1p, "transfers by the user in the last 24 h";
    UserTransferAmount24h = "user_transfer_amount_24h", Log1p, "sum of the user's transfer amounts in the last 24 h";
    UserPayeeNew = "user_payee_new", Identity, "transfer or payee add to a payee the user never used before";
    IpFailedLogins1h = "ip_failed_logins_1h", Log1p, "failed logins from the IP in the last hour";
    IpLogins1h = "ip_logins_1h", Log1p, "login attempts from the IP in the last hour";
    IpDistinctUsers24h = "ip_distinct_users_24h", Log1p, "distinct users attempting to log in from the IP in 24 h (an attempt that names no user counts by its session)";
    DeviceDistinctUsers24h = "device_distinct_users_24h", Log1p, "distinct users attempting to log in from the device in 24 h (an attempt that names no user counts by its session)";
    PayeeDistinctPayers24h = "payee_distinct_payers_24h", Log1p, "distinct users paying this payee in 24 h (mule fan-in)";
    SessionEventsBefore = "session_events_before", Log1p, "events earlier in the session (pages seen before this one)";
    SessionAgeS = "session_age_s", Log1p, "seconds since the session's first event";
    SessionRatePerMin = "session_rate_per_min", Log1p, "session events in the last minute";
    SessionGapMeanS = "session_gap_mean_s", Log1p, "mean seconds between the session's events";
    SessionGapCv = "session_gap_cv", Identity, "coefficient of variation of the gaps (low = machine cadence; 1 when < 3 gaps)";
    SessionHasLogin = "session_has_login", Identity, "a successful login happened earlier in the session";
    SessionSecsSinceLogin = "session_secs_since_login", Log1p, "seconds since the session's login (0 when none)";
    SessionPayeeAddedHere = "session_payee_added_here", Identity, "transfer to a payee added earlier in this session";
    SessionSecsSincePayeeAdd = "session_secs_since_payee_add", Log1p, "seconds between adding the payee in this session and this transfer";
    SessionIpChanged = "session_ip_changed", Identity, "the session's IP differs from its previous event's";
    SessionDeviceChanged = "session_device_changed", Identity, "the session's device differs from its previous event's";
    LoginCountryChanged = "login_country_changed", Identity, "country differs from the user's last successful login";
    HoursSinceLastLogin = "hours_since_last_login", Log1p, "hours since the user's previous successful login (capped at 720)";
    ImpossibleTravel = "impossible_travel", Identity, "country changed less than 6 hours after the last login";
    UserFailedLogins1m = "user_failed_logins_1m", Log1p, "failed logins for the user in the last minute";
    UserLogins1h = "user_logins_1h", Log1p, "successful logins for the user in the last hour";
    UserLogins24h = "user_logins_24h", Log1p, "successful logins for the user in the last 24 h";
    UserPayeeAdds24h = "user_payee_adds_24h", Log1p, "payees added by the user in the last 24 h";
    UserTransfers1h = "user_transfers_1h", Log1p, "transfers by the user in the last hour";
    UserTransferAmount1h = "user_transfer_amount_1h", Log1p, "sum of the user's transfer amounts in the last hour";
    IpFailedLogins1m = "ip_failed_logins_1m", Log1p, "failed logins from the IP in the last minute";
    SubnetFailedLogins1h = "subnet_failed_logins_1h", Log1p, "failed logins from the IP's /24 (IPv6 /64) in the last hour";
    UserIpAgeDays = "user_ip_age_days", Log1p, "days since the user first used this IP";
    UserSubnetAgeDays = "user_subnet_age_days", Log1p, "days since the user first used this /24 (IPv6 /64)";
    UserCountryAgeDays = "user_country_age_days", Log1p, "days since the user was first seen in this country";
    SessionSecsSincePasswordReset = "session_secs_since_password_reset", Log1p, "seconds since a password reset earlier in the session (0 when none)";
    SessionTermsRead = "session_terms_read", Identity, "the terms page was viewed earlier in the session";
    DeviceFailedLogins1h = "device_failed_logins_1h", Log1p, "failed logins from the device in the last hour";
    DeviceFailedLogins24h = "device_failed_logins_24h", Log1p, "failed logins from the device in the last 24 h";
    IpFailedLogins24h = "ip_failed_logins_24h", Log1p, "failed logins from the IP in the last 24 h";
    SubnetFailedLogins24h = "subnet_failed_logins_24h", Log1p, "failed logins from the IP's /24 (IPv6 /64) in the last 24 h";
    IpPasswordResets1h = "ip_password_resets_1h", Log1p, "password resets requested from the IP in the last hour";
    UserPasswordResets1h = "user_password_resets_1h", Log1p, "password resets for the user in the last hour";
    UserPayeeAdds1h = "user_payee_adds_1h", Log1p, "payees added by the user in the last hour";
    SessionFailedLogins = "session_failed_logins", Log1p, "failed logins earlier in the session";
    UaFailedLoginUsers10m = "ua_failed_login_users_10m", Log1p, "distinct users with a failed login from this exact user agent in the last 10 minutes, site-wide (a stuffing wave rotates addresses, rarely its agent; an attempt that names no user counts by its session)";
    UaFailedLoginUsers1h = "ua_failed_login_users_1h", Log1p, "distinct users with a failed login from this exact user agent in the last hour, site-wide";
    UaFailedLoginShare10m = "ua_failed_login_share_10m", Identity, "share of the users who tried to log in from this user agent in the last 10 minutes that failed (0 when none)";
    UserTransfers30d = "user_transfers_30d", Log1p, "on a transfer: the user's transfers in the 30 days before it";
    AmountVsUserMax30d = "amount_vs_user_max_30d", Log1p, "on a transfer: its amount over the largest of the user's transfers in the 30 days before it (0 without one)";
    UserAgeDays = "user_age_days", Log1p, "days since the user was first seen (0 for a user never seen)";
    AmountVsUserMedian30d = "amount_vs_user_median_30d", Log1p, "on a transfer: its amount over the median of the user's transfers in the 30 days before it (0 without one)";
    UserPayeeFirstTransfer = "user_payee_first_transfer", Identity, "on a transfer: the user never paid this payee before (adding it earlier does not count)";
    UserDeviceFirstTransfer = "user_device_first_transfer", Identity, "on a transfer: the user never made a transfer from this device before";
    SessionNetworksSeen = "session_networks_seen", Identity, "distinct /24s (IPv6 /64s) the session used before this event (2 or more: it moved mid-way)";
    SessionAgentsSeen = "session_agents_seen", Identity, "distinct browser families (operating system and browser, versions ignored) the session used before this event";
    UserAgentFamilyNew = "user_agent_family_new", Identity, "first time this browser family (operating system and browser, versions ignored) is seen for the user";
    UserAsnNew = "user_asn_new", Identity, "first time the network (`attrs.asn`, as a CDN sets it) is seen for the user (0 without one)";
    UserCityNew = "user_city_new", Identity, "first time the city (`attrs.city`, as a CDN sets it) is seen for the user (0 without one)";
    DeviceUsers30d = "device_users_30d", Log1p, "on a login, payee add or transfer: distinct users who logged in successfully from the device in 30 days";
    SessionSecsOnPayeePage = "session_secs_on_payee_page", Log1p, "on a payee add or transfer: seconds since the session first opened a payee page (0 when it did not)";
    UserHoursSinceCredentialChange = "user_hours_since_credential_change", Log1p, "hours since the user's previous password reset, password change or profile change, in any session (720 when none within 720)";
    PayeeDistinctPayers7d = "payee_distinct_payers_7d", Log1p, "on a transfer: distinct users paying this payee in 7 days";
    DeviceFraudLabels90d = "device_fraud_labels_90d", Log1p, "sessions that used this device and were labelled fraudulent, by the labels known in the 90 days before the event (0 on a device the user has had for a day or more)";
    SubnetFraudLabels90d = "subnet_fraud_labels_90d", Log1p, "sessions that used this /24 (IPv6 /64) and were labelled fraudulent, by the labels known in the 90 days before the event (0 on a network the user has used for a day or more)";
    PayeeFraudLabels90d = "payee_fraud_labels_90d", Log1p, "on a payee add or transfer: sessions that added or paid this payee and were labelled fraudulent, by the labels known in the 90 days before (0 for a payee the user has had for a day or more)";
    UserMuleLabels180d = "user_mule_labels_180d", Log1p, "mule labels on the account known in the 180 days before the event";
    SessionPagesBrowsed = "session_pages_browsed", Log1p, "on a payee add, transfer or credential change: account pages the session viewed before it (any page but login, payee, payment, credential and profile pages; 0: it went straight there, as a deep link or a script does)";
    AmountVsPayeeMedian30d = "amount_vs_payee_median_30d", Log1p, "on a transfer: its amount over the median of the user's transfers to the same payee in the 30 days before it (0 without one)";
    DeviceLoginDays30d = "device_login_days_30d", Log1p, "on a transfer: distinct days in the 30 before it on which this device logged in to the account (a takeover's device logs in quietly for a few days before it pays; a customer's own phone logs in on many)";
    IpFraudLabels90d = "ip_fraud_labels_90d", Log1p, "sessions that used this address and were labelled fraudulent, by the labels known in the 90 days before the event (0 on an address the user has used for a day or more)";
    AsnFraudLabels90d = "asn_fraud_labels_90d", Log1p, "the same for the network (`attrs.asn`, as a CDN sets it; 0 without one, and on a network the user has used for a day or more)";
    DeviceNewSinceCredentialChange = "device_new_since_credential_change", Identity, "on a login, payee add, transfer or credential change: the user's credentials changed in the last 7 days (or change now) and this device was first seen for the user at most an hour before that change (a reset, then a new device, then payments)";
}

/// Stable identifier of this feature definition, carried on every enriched event and artifact.
pub fn feature_schema_hash() -> String {
    // FNV-1a, 64 bit: stable across platforms and Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(format!("v{FEATURE_SCHEMA_VERSION}").as_bytes());
    for f in FEATURES {
        feed(b"|");
        feed(f.name.as_bytes());
        feed(if f.transform == Transform::Log1p { b"~log1p" } else { b"~id" });
    }
    format!("fs{FEATURE_SCHEMA_VERSION}-{h:016x}")
}

/// Raw feature values in [`FEATURES`] order. On the wire, an object keyed by feature name.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector(pub Vec<f64>);

impl FeatureVector {
    pub fn get(&self, f: F) -> f64 {
        self.0[f as usize]
    }
}

impl Serialize for FeatureVector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (def, v) in FEATURES.iter().zip(&self.0) {
            m.serialize_entry(def.name, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for FeatureVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FeatureVector;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of feature values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeatureVector, A::Error> {
                let mut v = vec![f64::NAN; FEATURES.len()];
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let x: f64 = map.next_value()?;
                    // Unknown names are ignored: a newer enricher may send more features.
                    if let Some(i) = FEATURES.iter().position(|f| f.name == k) {
                        v[i] = x;
                    }
                }
                if let Some(i) = v.iter().position(|x| x.is_nan()) {
                    return Err(serde::de::Error::custom(format!("feature {} is missing", FEATURES[i].name)));
                }
                Ok(FeatureVector(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Where in a plan's results each read landed.
#[derive(Debug, Default, Clone)]
struct Slots {
    session_range: usize,
    session_ip: usize,
    session_device: Option<usize>,
    session_login: usize,
    session_payee: Option<usize>,
    ip_fail_1h: usize,
    ip_logins_1h: usize,
    ip_users_24h: usize,
    device_users_24h: Option<usize>,
    user_known: Option<usize>,
    user_device: Option<usize>,
    user_ip: Option<usize>,
    user_subnet: Option<usize>,
    user_country: Option<usize>,
    user_fail_1m: Option<usize>,
    user_fail_1h: Option<usize>,
    user_logins_1h: Option<usize>,
    user_logins_24h: Option<usize>,
    user_payee_adds_24h: Option<usize>,
    ip_fail_1m: usize,
    subnet_fail_1h: usize,
    session_reset: usize,
    session_terms: usize,
    user_fail_24h: Option<usize>,
    user_resets_24h: Option<usize>,
    user_transfers: Option<usize>,
    user_payee: Option<usize>,
    last_login: Option<usize>,
    payee_payers: Option<usize>,
    device_fail_1h: Option<usize>,
    device_fail_24h: Option<usize>,
    ip_fail_24h: usize,
    subnet_fail_24h: usize,
    ip_resets_1h: usize,
    user_resets_1h: Option<usize>,
    user_payee_adds_1h: Option<usize>,
    session_fails: usize,
    ua_fail: Option<[usize; 2]>,
    ua_logins: Option<usize>,
    user_amounts: Option<usize>,
    session_nets: usize,
    session_agents: Option<usize>,
    user_family: Option<usize>,
    user_asn: Option<usize>,
    user_city: Option<usize>,
    user_payee_tx: Option<usize>,
    user_device_tx: Option<usize>,
    device_users_30d: Option<usize>,
    payee_page: Option<usize>,
    credential_change: Option<usize>,
    payee_payers_7d: Option<usize>,
    device_labels: Option<usize>,
    subnet_labels: usize,
    payee_labels: Option<usize>,
    user_mule: Option<usize>,
    session_browsed: Option<usize>,
    login_days: Option<usize>,
    ip_labels: usize,
    asn_labels: Option<usize>,
}

/// The history operations for one event and where their results land: reads, then writes
/// ([`Plan::ops`] is the execution order). The ops borrow the event's text.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    reads: Vec<Op<'a>>,
    /// Only change the history; their results are never read.
    writes: Vec<Op<'a>>,
    slots: Slots,
    texts: &'a Texts,
}

impl<'a> Plan<'a> {
    /// Every op, in execution order.
    pub fn ops(&self) -> impl Iterator<Item = &Op<'a>> {
        self.reads.iter().chain(&self.writes)
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.reads.len() + self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Planner<'a> {
    ops: Vec<Op<'a>>,
    writes: Vec<Op<'a>>,
}

/// A result's place, as [`compute`] reads it: the op's index times four, plus the window for an
/// [`Op::Count`].
fn slot(op: usize, window: usize) -> usize {
    op << 2 | window
}

/// The op's index and the window of a [`slot`].
fn unslot(slot: usize) -> (usize, usize) {
    (slot >> 2, slot & 3)
}

impl<'a> Planner<'a> {
    fn read(&mut self, op: Op<'a>) -> usize {
        self.ops.push(op);
        slot(self.ops.len() - 1, 0)
    }
    fn write(&mut self, op: Op<'a>) {
        self.writes.push(op);
    }

    /// Counts of `key` in each window before `ts`; when `record` is set (the event's id, or the
    /// user when distinct users are counted), it is added to the set (kept as long as the
    /// longest window). Returns the slots in window order.
    fn counter<const N: usize>(
        &mut self,
        key: Key<'a>,
        ts: i64,
        windows: [i64; N],
        record: Option<Text<'a>>,
    ) -> [usize; N] {
        let (op, _) = unslot(self.read(Op::Count { key, from: Starts::new(&windows.map(|w| ts - w)), to: ts }));
        let slots = std::array::from_fn(|window| slot(op, window));
        if let Some(member) = record {
            let longest = windows.iter().copied().max().unwrap_or(DAY_MS);
            self.write(add(key, member, ts, longest, MAX_SET, 2 * DAY_S));
        }
        slots
    }
}

fn add<'a>(key: Key<'a>, member: Text<'a>, ts: i64, window: i64, max_len: u32, ttl_s: u32) -> Op<'a> {
    Op::Add { key, member, ts, keep_after: ts - window, max_len, ttl_s }
}

/// What a plan names that the event does not hold as text: its address and network, and the
/// values a transfer or a successful login stores. Made once per event; its plan borrows it.
#[derive(Debug, Default)]
pub struct Texts {
    ip: String,
    net: String,
    /// `event_id|payee|amount` (the payee as a 64-bit hash in hex): a transfer in the user's
    /// sets of transfers and amounts (members are unique per event).
    transfer: String,
    /// On a transfer, its payee's 64-bit hash in hex (empty without a payee).
    payee: String,
    /// On a transfer or a successful login, the device id's 64-bit hash in hex, and on the login
    /// `device|day`: the days a device logged in on, in a bounded member whatever the id's length.
    device: String,
    device_day: String,
    /// `country|ts`: the user's last successful login.
    last_login: String,
    /// On a login, the user agent's digest in hex: the agent's keys are named by it, so that an
    /// agent of any length (attackers choose it) makes a key of 32 characters.
    agent: String,
    /// The user agent's 128-bit XXH3, taken once per event for its keys and the automation memo.
    agent_digest: Option<u128>,
    /// The agent's [`family`](crate::agent::family) and whether it names an automation tool
    /// (both from a memo of recent agents).
    family: String,
    automation: bool,
    /// `attrs.asn` and `attrs.city` as text (empty when the event has none).
    asn: String,
    city: String,
    /// On a credential change, the event's time: the user's last change.
    changed_at: String,
}

impl Texts {
    pub fn of(ev: &ClickEvent) -> Self {
        let mut texts = Texts::default();
        texts.fill(ev);
        texts
    }

    /// Renders `ev`'s texts into this one's buffers (replay reuses one for every event).
    pub fn fill(&mut self, ev: &ClickEvent) {
        use std::fmt::Write as _;
        for s in [
            &mut self.ip,
            &mut self.net,
            &mut self.transfer,
            &mut self.payee,
            &mut self.device,
            &mut self.device_day,
            &mut self.last_login,
            &mut self.agent,
            &mut self.family,
            &mut self.asn,
            &mut self.city,
            &mut self.changed_at,
        ] {
            s.clear();
        }
        write_addr(&mut self.ip, ev.ip);
        write_subnet(&mut self.net, ev.ip);
        let login_ok = ev.is(kind::LOGIN) && ev.succeeded();
        if ev.is(kind::TRANSFER) {
            let payee = ev.payee_id.as_deref().map_or(0, |p| xxhash_rust::xxh3::xxh3_64(p.as_bytes()));
            let _ = write!(self.transfer, "{}|{payee:016x}|{}", ev.event_id, ev.amount.unwrap_or(0.0));
            if ev.payee_id.is_some() {
                let _ = write!(self.payee, "{payee:016x}");
            }
        }
        // Only transfers read a device's login days, and only successful logins record them.
        if let Some(d) = ev.device_id.as_deref().filter(|_| login_ok || ev.is(kind::TRANSFER)) {
            let _ = write!(self.device, "{:016x}", xxhash_rust::xxh3::xxh3_64(d.as_bytes()));
            if login_ok {
                let _ = write!(self.device_day, "{}|{}", self.device, ev.ts.div_euclid(DAY_MS));
            }
        }
        if login_ok {
            let _ = write!(self.last_login, "{}|{}", ev.country.as_deref().unwrap_or(""), ev.ts);
        }
        self.agent_digest = ev.user_agent.as_deref().map(|a| xxhash_rust::xxh3::xxh3_128(a.as_bytes()));
        self.automation = match (ev.user_agent.as_deref(), self.agent_digest) {
            (Some(agent), Some(digest)) => {
                SEEN_AGENTS.with_borrow_mut(|seen| seen.facts(agent, digest, &mut self.family))
            }
            _ => false,
        };
        if let Some(attrs) = &ev.attrs {
            attr_text(attrs.get("asn"), &mut self.asn);
            attr_text(attrs.get("city"), &mut self.city);
        }
        if is_credential_change(ev) {
            let _ = write!(self.changed_at, "{}", ev.ts);
        }
        if let Some(digest) = self.agent_digest.filter(|_| ev.is(kind::LOGIN)) {
            self.agent.extend((0..32).rev().map(|i| HEX[(digest >> (4 * i)) as usize & 0xf] as char));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A flat attribute's value as text (a CDN may send the ASN as a number); nothing for booleans.
fn attr_text(value: Option<&serde_json::Value>, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        Some(serde_json::Value::String(s)) => out.push_str(s),
        Some(serde_json::Value::Number(n)) => {
            let _ = write!(out, "{n}");
        }
        _ => {}
    }
}

/// A password reset or change, or a profile change (where an e-mail address or phone number
/// that receives codes is replaced).
fn is_credential_change(ev: &ClickEvent) -> bool {
    ev.is(kind::PASSWORD_RESET) || ev.is(kind::PASSWORD_CHANGE) || ev.is(kind::PROFILE_CHANGE)
}

/// Lists the history reads and writes for `ev`, whose [`Texts`] are `texts`.
pub fn plan<'e>(ev: &'e ClickEvent, texts: &'e Texts) -> Plan<'e> {
    plan_in(ev, texts, Vec::with_capacity(32), Vec::with_capacity(16))
}

/// The plans of a micro-batch of events (the `i`th borrowing `texts[i]`) and all their ops in
/// execution order: event by event, each plan's reads then writes. A store executes the ops as
/// one pipeline, so each event's reads see the writes of the events before it.
pub fn plan_batch<'e>(
    events: impl IntoIterator<Item = &'e ClickEvent>,
    texts: &'e [Texts],
) -> (Vec<Plan<'e>>, Vec<Op<'e>>) {
    let plans: Vec<_> = events.into_iter().zip(texts).map(|(ev, t)| plan(ev, t)).collect();
    let ops = plans.iter().flat_map(|p| p.ops().copied()).collect();
    (plans, ops)
}

/// Each event's features from the results of a [`plan_batch`]'s ops (one per op, in order).
pub fn compute_batch<'e>(
    events: impl IntoIterator<Item = &'e ClickEvent>,
    plans: &[Plan],
    results: &[OpResult],
) -> Vec<FeatureVector> {
    let mut at = 0;
    events
        .into_iter()
        .zip(plans)
        .map(|(ev, plan)| {
            at += plan.len();
            compute(ev, plan, &results[at - plan.len()..at])
        })
        .collect()
}

/// [`plan`] into the given (empty) buffers for reads and writes.
fn plan_in<'e>(ev: &'e ClickEvent, texts: &'e Texts, ops: Vec<Op<'e>>, writes: Vec<Op<'e>>) -> Plan<'e> {
    let ts = ev.ts;
    let mut p = Planner { ops, writes };
    let is_login = ev.is(kind::LOGIN);
    let login_ok = is_login && ev.succeeded();
    let login_failed = is_login && ev.failed();
    // Each entity's text (and so its hash) is made once and shared by its keys.
    let sid = Text::from(ev.session_id.as_str());
    let id = Text::from(ev.event_id.as_str());
    let payee = ev.payee_id.as_deref().filter(|_| ev.is(kind::TRANSFER) || ev.is(kind::ADD_PAYEE));

    // Session.
    let session_key = Key::new("s:ev", sid);
    let session_range = p.read(Op::Times { key: session_key, from: ts - DAY_MS, to: ts });
    p.write(add(session_key, id, ts, DAY_MS, MAX_SESSION_EVENTS, DAY_S));
    let (ip, net) = (Text::from(&texts.ip), Text::from(&texts.net));
    let session_ip = p.read(Op::Swap { key: Key::new("s:ip", sid), value: ip, ttl_s: DAY_S });
    let device = ev.device_id.as_deref().map(Text::from);
    let session_device = device.map(|d| p.read(Op::Swap { key: Key::new("s:dv", sid), value: d, ttl_s: DAY_S }));
    // The networks and browser families the session used: a hijacked session goes on from
    // another address and browser, and every event after the switch still shows it.
    let [session_nets] = p.counter(Key::new("s:nt", sid), ts, [DAY_MS], Some(net));
    let family = ev.user_agent.is_some().then(|| Text::from(&texts.family));
    let session_agents = family.map(|f| p.counter(Key::new("s:ag", sid), ts, [DAY_MS], Some(f))[0]);
    let session_marks = Key::new("s:fs", sid);
    // A mark is recorded when the event does it, and otherwise only looked up.
    let mark = |p: &mut Planner<'e>, member: Text<'e>, now: bool| {
        let key = session_marks;
        if now { p.read(Op::FirstSeen { key, member, ts, ttl_s: DAY_S }) } else { p.read(Op::Lookup { key, member }) }
    };
    // What a session did, as members of its marks (fixed texts, hashed when compiled).
    const LOGIN: Text<'static> = Text::fixed("login");
    const RESET: Text<'static> = Text::fixed("reset");
    const TERMS: Text<'static> = Text::fixed("terms");
    const PAYEE_PAGE: Text<'static> = Text::fixed("payee page");
    let session_login = mark(&mut p, LOGIN, login_ok);
    let session_reset = mark(&mut p, RESET, ev.is(kind::PASSWORD_RESET));
    let reads_terms = ev.is(kind::PAGE_VIEW) && ev.path.as_deref().is_some_and(is_terms_page);
    let session_terms = mark(&mut p, TERMS, reads_terms);
    let session_payee = payee.map(|payee| mark(&mut p, Text::from(payee).prefixed("payee:"), ev.is(kind::ADD_PAYEE)));
    // How long the customer spent between opening a payee page and adding or paying one (a
    // scam victim on the phone with the scammer hesitates there).
    let reads_payee_page = ev.is(kind::PAGE_VIEW) && ev.path.as_deref().is_some_and(is_payee_page);
    let payee_page = (reads_payee_page || payee.is_some()).then(|| mark(&mut p, PAYEE_PAGE, reads_payee_page));
    // How much of the account the session looked at before acting: a customer opens an
    // overview or a statement first; a script, or a deep link sent by a phisher, goes straight
    // to the payee, payment or credential page.
    let browsed_pages = Key::new("s:br", sid);
    if ev.is(kind::PAGE_VIEW) && ev.path.as_deref().is_some_and(is_browse_page) {
        p.write(add(browsed_pages, id, ts, DAY_MS, MAX_SET, DAY_S));
    }
    let acts = ev.is(kind::ADD_PAYEE) || ev.is(kind::TRANSFER) || is_credential_change(ev);
    let session_browsed = acts.then(|| p.read(Op::Count { key: browsed_pages, from: (ts - DAY_MS).into(), to: ts }));

    // IP.
    let [ip_fail_1m, ip_fail_1h, ip_fail_24h] =
        p.counter(Key::new("ip:fl", ip), ts, [MINUTE_MS, HOUR_MS, DAY_MS], login_failed.then_some(id));
    let [subnet_fail_1h, subnet_fail_24h] =
        p.counter(Key::new("sn:fl", net), ts, [HOUR_MS, DAY_MS], login_failed.then_some(id));
    let [ip_resets_1h] = p.counter(Key::new("ip:pr", ip), ts, [HOUR_MS], ev.is(kind::PASSWORD_RESET).then_some(id));
    let [session_fails] = p.counter(Key::new("s:fl", sid), ts, [DAY_MS], login_failed.then_some(id));
    let [ip_logins_1h] = p.counter(Key::new("ip:lg", ip), ts, [HOUR_MS], is_login.then_some(id));
    let ip_users = Key::new("ip:du", ip);
    let ip_users_24h = p.read(Op::Count { key: ip_users, from: (ts - DAY_MS).into(), to: ts });

    // Device.
    let device_users = device.map(|d| Key::new("dv:du", d));
    let device_users_24h = device_users.map(|key| p.read(Op::Count { key, from: (ts - DAY_MS).into(), to: ts }));
    let device_fails =
        device.map(|d| p.counter(Key::new("dv:fl", d), ts, [HOUR_MS, DAY_MS], login_failed.then_some(id)));
    // The accounts a device logged in to over a month (a mule herder runs several from one).
    let sensitive = is_login || ev.is(kind::TRANSFER) || ev.is(kind::ADD_PAYEE);
    let device_accounts = device.filter(|_| sensitive).map(|d| Key::new("dv:um", d));
    let device_users_30d =
        device_accounts.map(|key| p.read(Op::Count { key, from: (ts - DEVICE_USERS_MS).into(), to: ts }));

    // Who tried to log in: the account, or for an attempt that names none (a site that records
    // the account of successful logins only), its session. A stuffing tool's attempts come each
    // in a fresh session, a customer's retries in one.
    let user = ev.user_id.as_deref().map(Text::from);
    let who = is_login.then(|| user.unwrap_or_else(|| sid.prefixed("s:")));
    // Distinct accounts per address and device are recorded on logins; with a user, below.
    let record_login = |p: &mut Planner<'e>, who: Text<'e>| {
        p.write(add(ip_users, who, ts, DAY_MS, MAX_SET, 2 * DAY_S));
        if let Some(key) = device_users {
            p.write(add(key, who, ts, DAY_MS, MAX_SET, 2 * DAY_S));
        }
    };

    // User agent, site-wide, on logins: a stuffing wave spreads over many addresses and users
    // but rarely over many agents. Members are users, so one customer's retries count once.
    let mut s = Slots::default();
    if let Some(who) = who.filter(|_| ev.user_agent.is_some()) {
        let digest = Text::from(&texts.agent);
        let fails = p.counter(Key::new("ua:fl", digest), ts, [TEN_MINUTES_MS, HOUR_MS], login_failed.then_some(who));
        let [logins] = p.counter(Key::new("ua:lg", digest), ts, [TEN_MINUTES_MS], Some(who));
        (s.ua_fail, s.ua_logins) = (Some(fails), Some(logins));
    }

    // User.
    if let Some(user) = user {
        let seen = Key::new("u:seen", user);
        // Failed logins and resets do not prove the account exists; TTLs only ever grow, so
        // this never shortens a real customer's history.
        let unproven = (is_login && !login_ok) || ev.is(kind::PASSWORD_RESET);
        let user_ttl = if unproven { UNPROVEN_USER_TTL_S } else { USER_TTL_S };
        let first_seen =
            |p: &mut Planner<'e>, member: Text<'e>| p.read(Op::FirstSeen { key: seen, member, ts, ttl_s: user_ttl });
        // The user as a whole: seen at all.
        const ANY: Text<'static> = Text::fixed("*");
        s.user_known = Some(first_seen(&mut p, ANY));
        s.user_device = device.map(|d| first_seen(&mut p, d.prefixed("d:")));
        s.user_ip = Some(first_seen(&mut p, ip.prefixed("i:")));
        s.user_subnet = Some(first_seen(&mut p, net.prefixed("n:")));
        s.user_country = ev.country.as_deref().map(|c| first_seen(&mut p, Text::from(c).prefixed("c:")));
        s.user_payee = payee.map(|py| first_seen(&mut p, Text::from(py).prefixed("p:")));
        s.user_family = family.map(|f| first_seen(&mut p, f.prefixed("f:")));
        s.user_asn = (!texts.asn.is_empty()).then(|| first_seen(&mut p, Text::from(&texts.asn).prefixed("a:")));
        s.user_city = (!texts.city.is_empty()).then(|| first_seen(&mut p, Text::from(&texts.city).prefixed("y:")));
        if ev.is(kind::TRANSFER) {
            // Paying a payee for the first time (adding it is not paying it), and the first
            // payment from a device that may have logged in quietly for days.
            s.user_payee_tx = payee.map(|py| first_seen(&mut p, Text::from(py).prefixed("t:")));
            s.user_device_tx = device.map(|d| first_seen(&mut p, d.prefixed("x:")));
        }
        // The days each of the user's devices logged in on: read by transfers.
        let login_days = Key::new("u:dl", user);
        if !texts.device_day.is_empty() {
            let member = Text::from(&texts.device_day);
            p.write(add(login_days, member, ts, LOGIN_DAYS_MS, MAX_LOGIN_DAYS, LOGIN_DAYS_TTL_S));
        }
        if ev.is(kind::TRANSFER) && device.is_some() {
            s.login_days = Some(p.read(Op::Range { key: login_days, from: ts - LOGIN_DAYS_MS, to: ts }));
        }
        // The user's last credential change, in any session: a reset from a phished address,
        // then a new device, then a payment.
        let changes = Key::new("u:cc", user);
        if is_credential_change(ev) {
            let value = Text::from(&texts.changed_at);
            s.credential_change = Some(p.read(Op::Swap { key: changes, value, ttl_s: user_ttl }));
        } else if sensitive {
            s.credential_change = Some(p.read(Op::Get { key: changes }));
        }
        let key = feedback::mule_labels(user);
        s.user_mule = Some(p.read(Op::Count { key, from: (ts - feedback::MULE_MS).into(), to: ts }));
        if let Some(key) = device_accounts.filter(|_| login_ok) {
            p.write(add(key, user, ts, DEVICE_USERS_MS, MAX_DEVICE_USERS, DEVICE_USERS_TTL_S));
        }

        let k = Key::new("u:fl", user);
        let fails = p.counter(k, ts, [MINUTE_MS, HOUR_MS, DAY_MS], login_failed.then_some(id)).map(Some);
        [s.user_fail_1m, s.user_fail_1h, s.user_fail_24h] = fails;
        let k = Key::new("u:ls", user);
        [s.user_logins_1h, s.user_logins_24h] = p.counter(k, ts, [HOUR_MS, DAY_MS], login_ok.then_some(id)).map(Some);
        let k = Key::new("u:pa", user);
        let adds = p.counter(k, ts, [HOUR_MS, DAY_MS], ev.is(kind::ADD_PAYEE).then_some(id)).map(Some);
        [s.user_payee_adds_1h, s.user_payee_adds_24h] = adds;
        let k = Key::new("u:pr", user);
        let resets = p.counter(k, ts, [HOUR_MS, DAY_MS], ev.is(kind::PASSWORD_RESET).then_some(id)).map(Some);
        [s.user_resets_1h, s.user_resets_24h] = resets;
        let transfers = Key::new("u:tx", user);
        s.user_transfers = Some(p.read(Op::Range { key: transfers, from: ts - DAY_MS, to: ts }));
        if ev.is(kind::TRANSFER) {
            let member = Text::from(&texts.transfer);
            p.write(add(transfers, member, ts, DAY_MS, MAX_SET, 2 * DAY_S));
            // A month of the user's amounts, read only by transfers: what is usual for this user.
            let amounts = Key::new("u:ta", user);
            s.user_amounts = Some(p.read(Op::Range { key: amounts, from: ts - AMOUNT_HISTORY_MS, to: ts }));
            p.write(add(amounts, member, ts, AMOUNT_HISTORY_MS, MAX_AMOUNT_HISTORY, AMOUNT_HISTORY_TTL_S));
        }
        let last_login = Key::new("u:ll", user);
        s.last_login = Some(if login_ok {
            p.read(Op::Swap { key: last_login, value: Text::from(&texts.last_login), ttl_s: USER_TTL_S })
        } else {
            p.read(Op::Get { key: last_login })
        });
        if is_login {
            record_login(&mut p, user);
        }
    } else if let Some(who) = who {
        record_login(&mut p, who);
    }

    // Payee fan-in (mules receive from many payers).
    if let Some(py) = payee.filter(|_| ev.is(kind::TRANSFER)) {
        let payers = Key::new("p:du", py);
        let from = Starts::new(&[ts - DAY_MS, ts - PAYEE_PAYERS_MS]);
        let at = p.read(Op::Count { key: payers, from, to: ts });
        (s.payee_payers, s.payee_payers_7d) = (Some(at), Some(slot(unslot(at).0, 1)));
        if let Some(user) = ev.user_id.as_deref() {
            p.write(add(payers, user.into(), ts, PAYEE_PAYERS_MS, MAX_SET, PAYEE_PAYERS_TTL_S));
        }
    }

    // Labels fed back ([`feedback`]): the entities this session uses, for a later label to
    // mark, and the marks that labels known by now left on them.
    let entities = feedback::session_entities(sid);
    let (device_entity, net_entity) = (device.map(|d| d.prefixed("d:")), net.prefixed("n:"));
    let payee_entity = payee.map(|py| Text::from(py).prefixed("p:"));
    let ip_entity = ip.prefixed("i:");
    let asn_entity = (!texts.asn.is_empty()).then(|| Text::from(&texts.asn).prefixed("a:"));
    let labels = |p: &mut Planner<'e>, entity| {
        p.read(Op::Count { key: feedback::entity_labels(entity), from: (ts - feedback::LABELS_MS).into(), to: ts })
    };
    s.device_labels = device_entity.map(|e| labels(&mut p, e));
    s.subnet_labels = labels(&mut p, net_entity);
    s.payee_labels = payee_entity.map(|e| labels(&mut p, e));
    s.ip_labels = labels(&mut p, ip_entity);
    s.asn_labels = asn_entity.map(|e| labels(&mut p, e));
    for entity in [device_entity, Some(net_entity), Some(ip_entity), asn_entity, payee_entity].into_iter().flatten() {
        p.write(feedback::record_entity(entities, entity, ts));
    }

    s.session_range = session_range;
    s.session_ip = session_ip;
    s.session_device = session_device;
    s.session_login = session_login;
    s.session_payee = session_payee;
    s.ip_fail_1h = ip_fail_1h;
    s.ip_fail_1m = ip_fail_1m;
    s.subnet_fail_1h = subnet_fail_1h;
    s.session_reset = session_reset;
    s.session_terms = session_terms;
    s.ip_logins_1h = ip_logins_1h;
    s.ip_users_24h = ip_users_24h;
    s.device_users_24h = device_users_24h;
    s.device_fail_1h = device_fails.as_ref().map(|f| f[0]);
    s.device_fail_24h = device_fails.as_ref().map(|f| f[1]);
    s.ip_fail_24h = ip_fail_24h;
    s.subnet_fail_24h = subnet_fail_24h;
    s.ip_resets_1h = ip_resets_1h;
    s.session_fails = session_fails;
    s.session_nets = session_nets;
    s.session_agents = session_agents;
    s.device_users_30d = device_users_30d;
    s.payee_page = payee_page;
    s.session_browsed = session_browsed;

    Plan { reads: p.ops, writes: p.writes, slots: s, texts }
}

const AUTOMATION_MARKERS: &[&str] = &[
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "libwww",
    "scrapy",
    "bot",
    "spider",
    "crawler",
];

/// Finds any of `markers` in one pass with ASCII case ignored, without a lowercased copy (a user
/// agent is ~150 bytes and there are 17 markers: lowercasing and searching for each took a
/// twentieth of replay's instructions).
fn matcher(markers: &[&str]) -> aho_corasick::AhoCorasick {
    aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(markers).expect("fixed ASCII markers")
}

static TERMS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&["terms", "eula", "conditions", "legal"]));
static PAYEE_PAGES: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&["payee", "beneficiar", "recipient"]));
static AUTOMATION: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(AUTOMATION_MARKERS));

/// Terms, conditions or licence pages (the EULA a fraudster never reads).
fn is_terms_page(path: &str) -> bool {
    TERMS.is_match(path)
}

static ACTION_PAGES: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    matcher(&[
        "login", "logon", "signin", "sign-in", "logout", "signout", "password", "reset", "mfa", "otp", "2fa", "verify",
        "profile", "transfer", "pay",
    ])
});

/// Pages that show the account rather than act on it (overview, statements, cards, help…):
/// anything but login, payee, payment, credential and profile pages.
fn is_browse_page(path: &str) -> bool {
    !ACTION_PAGES.is_match(path) && !is_payee_page(path)
}

/// Pages where a payee is chosen or added (payees, beneficiaries, recipients).
fn is_payee_page(path: &str) -> bool {
    PAYEE_PAGES.is_match(path)
}

/// Whether the agent (with its digest) names an automation tool, through the memo.
#[cfg(test)]
fn ua_automation(agent: Option<(&str, u128)>) -> bool {
    agent.is_some_and(|(agent, digest)| {
        SEEN_AGENTS.with_borrow_mut(|seen| seen.facts(agent, digest, &mut String::new()))
    })
}

/// The automation flag and [family](crate::agent::family) of recently seen user agents. A session sends the same agent with every
/// event and a site sees few distinct ones, while scanning one (~150 bytes) for the markers
/// cost more than all the event's other features in replay. A memo of a pure function, keyed
/// by the agent's 128-bit hash (as history keys are: two agents share one with probability
/// ~2⁻¹²⁸), so that a hit neither keeps nor compares the text.
struct SeenAgents(Vec<Option<SeenAgent>>);

#[derive(Clone)]
struct SeenAgent {
    id: u128,
    automation: bool,
    family: String,
}

const SEEN_AGENTS_SLOTS: usize = 256;

impl SeenAgents {
    /// Whether `agent` (of digest `id`) names an automation tool; its family is appended to
    /// `family`.
    fn facts(&mut self, agent: &str, id: u128, family: &mut String) -> bool {
        let slot = id as usize % SEEN_AGENTS_SLOTS;
        match &self.0[slot] {
            Some(seen) if seen.id == id => {
                family.push_str(&seen.family);
                seen.automation
            }
            _ => {
                let automation = AUTOMATION.is_match(agent);
                let mut own = String::new();
                crate::agent::family(agent, &mut own);
                family.push_str(&own);
                self.0[slot] = Some(SeenAgent { id, automation, family: own });
                automation
            }
        }
    }
}

thread_local! {
    static SEEN_AGENTS: std::cell::RefCell<SeenAgents> =
        std::cell::RefCell::new(SeenAgents(vec![None; SEEN_AGENTS_SLOTS]));
}

/// The median of `xs` (reordered), 0 when empty.
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 { xs[mid] } else { (xs[mid - 1] + xs[mid]) / 2.0 }
}

/// The amount of a transfer as a set holds it (`event_id|payee|amount`; before feature schema
/// v10, `event_id|amount`).
fn transfer_amount((member, _): &(std::sync::Arc<str>, i64)) -> Option<f64> {
    member.rsplit_once('|').and_then(|(_, a)| a.parse().ok())
}

/// Computes the feature vector from a plan's results (`results[i]` answers the `i`th of
/// [`Plan::ops`]; the writes' results, at the end, may be left out).
pub fn compute(ev: &ClickEvent, plan: &Plan, results: &[OpResult]) -> FeatureVector {
    let s = &plan.slots;
    let ts = ev.ts;
    // Slots name an op's result and, for a count, its window.
    let r = |i: usize| &results[unslot(i).0];
    let ro = |i: Option<usize>| i.map(r);
    let n = |i: usize| {
        let (op, window) = unslot(i);
        results[op].count_at(window) as f64
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let is_new = |i: Option<usize>| flag(matches!(ro(i), Some(OpResult::Time(None))));
    let count = |i: Option<usize>| i.map(n).unwrap_or(0.0);
    let mut v = vec![0.0; FEATURES.len()];
    let mut set = |f: F, x: f64| v[f as usize] = x;

    let is_login = ev.is(kind::LOGIN);
    set(F::IsLogin, flag(is_login));
    set(F::IsLoginFailure, flag(is_login && ev.failed()));
    set(F::IsTransfer, flag(ev.is(kind::TRANSFER)));
    set(F::IsAddPayee, flag(ev.is(kind::ADD_PAYEE)));
    set(
        F::IsCredentialChange,
        flag(
            [kind::PASSWORD_RESET, kind::PASSWORD_CHANGE, kind::PROFILE_CHANGE, kind::MFA]
                .contains(&ev.event_type.as_str()),
        ),
    );
    set(F::Amount, if ev.is(kind::TRANSFER) { ev.amount.unwrap_or(0.0) } else { 0.0 });
    set(F::UaAutomation, flag(plan.texts.automation));

    set(F::UserKnown, flag(matches!(ro(s.user_known), Some(OpResult::Time(Some(_))))));
    set(F::UserDeviceNew, is_new(s.user_device));
    // Days since a first-seen time (0 when there is none).
    let age = |i: Option<usize>| {
        ro(i).and_then(OpResult::time).map(|t| (ts - t).max(0) as f64 / DAY_MS as f64).unwrap_or(0.0)
    };
    set(F::UserDeviceAgeDays, age(s.user_device));
    set(F::UserIpNew, is_new(s.user_ip));
    set(F::UserSubnetNew, is_new(s.user_subnet));
    set(F::UserCountryNew, is_new(s.user_country));
    set(F::UserFailedLogins1h, count(s.user_fail_1h));
    set(F::UserFailedLogins1m, count(s.user_fail_1m));
    set(F::UserLogins1h, count(s.user_logins_1h));
    set(F::UserLogins24h, count(s.user_logins_24h));
    set(F::UserPayeeAdds24h, count(s.user_payee_adds_24h));
    set(F::IpFailedLogins1m, n(s.ip_fail_1m));
    set(F::SubnetFailedLogins1h, n(s.subnet_fail_1h));
    set(F::UserIpAgeDays, age(s.user_ip));
    set(F::UserSubnetAgeDays, age(s.user_subnet));
    set(F::UserCountryAgeDays, age(s.user_country));
    let reset_at = r(s.session_reset).time().filter(|_| !ev.is(kind::PASSWORD_RESET));
    set(F::SessionSecsSincePasswordReset, reset_at.map(|t| (ts - t).max(0) as f64 / 1000.0).unwrap_or(0.0));
    set(F::SessionTermsRead, flag(r(s.session_terms).time().is_some()));
    set(F::UserFailedLogins24h, count(s.user_fail_24h));
    set(F::UserPasswordResets24h, count(s.user_resets_24h));
    let transfers = ro(s.user_transfers).map(OpResult::range).unwrap_or(&[]);
    set(F::UserTransfers24h, transfers.len() as f64);
    set(F::UserTransferAmount24h, transfers.iter().filter_map(transfer_amount).sum());
    let last_hour = || transfers.iter().filter(|(_, t)| *t >= ts - HOUR_MS);
    set(F::UserTransfers1h, last_hour().count() as f64);
    set(F::UserTransferAmount1h, last_hour().filter_map(transfer_amount).sum());
    let month = ro(s.user_amounts).map(OpResult::range).unwrap_or(&[]);
    set(F::UserTransfers30d, month.len() as f64);
    let largest = month.iter().filter_map(transfer_amount).fold(0.0, f64::max);
    set(F::AmountVsUserMax30d, if largest > 0.0 { ev.amount.unwrap_or(0.0) / largest } else { 0.0 });
    set(F::UserPayeeNew, is_new(s.user_payee));

    set(F::IpFailedLogins1h, n(s.ip_fail_1h));
    set(F::IpLogins1h, n(s.ip_logins_1h));
    set(F::IpDistinctUsers24h, n(s.ip_users_24h));
    set(F::DeviceDistinctUsers24h, count(s.device_users_24h));
    set(F::PayeeDistinctPayers24h, count(s.payee_payers));
    set(F::DeviceFailedLogins1h, count(s.device_fail_1h));
    set(F::DeviceFailedLogins24h, count(s.device_fail_24h));
    set(F::IpFailedLogins24h, n(s.ip_fail_24h));
    set(F::SubnetFailedLogins24h, n(s.subnet_fail_24h));
    set(F::IpPasswordResets1h, n(s.ip_resets_1h));
    set(F::UserPasswordResets1h, count(s.user_resets_1h));
    set(F::UserPayeeAdds1h, count(s.user_payee_adds_1h));
    set(F::SessionFailedLogins, n(s.session_fails));
    let ua_fail = |window: usize| s.ua_fail.map_or(0.0, |f| n(f[window]));
    set(F::UaFailedLoginUsers10m, ua_fail(0));
    set(F::UaFailedLoginUsers1h, ua_fail(1));
    let ua_logins = count(s.ua_logins);
    // Users who failed are a subset of those who tried in the same window; `min` covers the caps.
    set(F::UaFailedLoginShare10m, if ua_logins > 0.0 { (ua_fail(0) / ua_logins).min(1.0) } else { 0.0 });

    // Session shape from the timestamps of its earlier events.
    // Earlier events' times come in ascending order (the window is `[ts - 1 day, ts]`), so this
    // event's time goes last and the gaps are consecutive differences.
    let times = r(s.session_range).times();
    set(F::SessionEventsBefore, times.len() as f64);
    let first = times.first().copied().unwrap_or(ts);
    set(F::SessionAgeS, (ts - first).max(0) as f64 / 1000.0);
    set(F::SessionRatePerMin, times.iter().filter(|t| **t >= ts - MINUTE_MS).count() as f64);
    let gaps = || times.iter().zip(times.iter().skip(1).chain([&ts])).map(|(a, b)| (b - a) as f64 / 1000.0);
    let n_gaps = times.len();
    let mean = if n_gaps == 0 { 0.0 } else { gaps().sum::<f64>() / n_gaps as f64 };
    set(F::SessionGapMeanS, mean);
    let cv = if n_gaps >= 3 && mean > 0.0 {
        let var = gaps().map(|g| (g - mean).powi(2)).sum::<f64>() / n_gaps as f64;
        var.sqrt() / mean
    } else {
        1.0
    };
    set(F::SessionGapCv, cv);
    let login_at = r(s.session_login).time();
    set(F::SessionHasLogin, flag(login_at.is_some()));
    set(F::SessionSecsSinceLogin, login_at.map(|t| (ts - t).max(0) as f64 / 1000.0).unwrap_or(0.0));
    let payee_added_at = ro(s.session_payee).and_then(OpResult::time).filter(|_| ev.is(kind::TRANSFER));
    set(F::SessionPayeeAddedHere, flag(payee_added_at.is_some()));
    set(F::SessionSecsSincePayeeAdd, payee_added_at.map(|t| (ts - t).max(0) as f64 / 1000.0).unwrap_or(0.0));
    // The stored text is this module's own rendering of an address, as is the plan's.
    let ip_changed = r(s.session_ip).value().is_some_and(|prev| prev != plan.texts.ip);
    set(F::SessionIpChanged, flag(ip_changed));
    let device_changed = match (ro(s.session_device).and_then(OpResult::value), &ev.device_id) {
        (Some(prev), Some(cur)) => prev != cur,
        _ => false,
    };
    set(F::SessionDeviceChanged, flag(device_changed));

    // The user's previous successful login: "country|ts".
    // A swap answers `Same` when this login's text was the last one already (the same event again).
    let last = match ro(s.last_login) {
        Some(OpResult::Same) => Some(plan.texts.last_login.as_str()),
        answer => answer.and_then(OpResult::value),
    };
    let last = last.and_then(|v| v.rsplit_once('|')).and_then(|(c, t)| t.parse::<i64>().ok().map(|t| (c, t)));
    if let Some((country, at)) = last {
        let hours = ((ts - at).max(0) as f64 / HOUR_MS as f64).min(720.0);
        let changed = match &ev.country {
            Some(c) => !country.is_empty() && c != country,
            None => false,
        };
        set(F::LoginCountryChanged, flag(changed));
        set(F::HoursSinceLastLogin, hours);
        set(F::ImpossibleTravel, flag(changed && hours < 6.0));
    }

    set(F::UserAgeDays, age(s.user_known));
    let mut amounts: Vec<f64> = month.iter().filter_map(transfer_amount).collect();
    let user_median = median(&mut amounts);
    set(F::AmountVsUserMedian30d, if user_median > 0.0 { ev.amount.unwrap_or(0.0) / user_median } else { 0.0 });
    set(F::UserPayeeFirstTransfer, is_new(s.user_payee_tx));
    set(F::UserDeviceFirstTransfer, is_new(s.user_device_tx));
    set(F::SessionNetworksSeen, n(s.session_nets));
    set(F::SessionAgentsSeen, count(s.session_agents));
    set(F::UserAgentFamilyNew, is_new(s.user_family));
    set(F::UserAsnNew, is_new(s.user_asn));
    set(F::UserCityNew, is_new(s.user_city));
    set(F::DeviceUsers30d, count(s.device_users_30d));
    let payee_page_at =
        ro(s.payee_page).and_then(OpResult::time).filter(|_| ev.payee_id.is_some() && !ev.is(kind::PAGE_VIEW));
    set(F::SessionSecsOnPayeePage, payee_page_at.map(|t| (ts - t).max(0) as f64 / 1000.0).unwrap_or(0.0));
    let changed_at = match ro(s.credential_change) {
        Some(OpResult::Same) => Some(ts),
        answer => answer.and_then(OpResult::value).and_then(|v| v.parse::<i64>().ok()),
    };
    let hours = changed_at.map_or(NO_CHANGE_HOURS, |t| ((ts - t).max(0) as f64 / HOUR_MS as f64).min(NO_CHANGE_HOURS));
    set(F::UserHoursSinceCredentialChange, hours);
    set(F::PayeeDistinctPayers7d, count(s.payee_payers_7d));
    // A label's mark says nothing about what the customer has long used: a scam victim's own
    // phone and home network, a payee paid for years, a customer whose session was labelled
    // by mistake. It speaks of what is new to them.
    let established = |i: Option<usize>| ro(i).and_then(OpResult::time).is_some_and(|t| ts - t >= DAY_MS);
    let unless_established = |labels: f64, own: Option<usize>| if established(own) { 0.0 } else { labels };
    set(F::DeviceFraudLabels90d, unless_established(count(s.device_labels), s.user_device));
    set(F::SubnetFraudLabels90d, unless_established(count(Some(s.subnet_labels)), s.user_subnet));
    set(F::PayeeFraudLabels90d, unless_established(count(s.payee_labels), s.user_payee));
    set(F::UserMuleLabels180d, count(s.user_mule));
    set(F::IpFraudLabels90d, unless_established(count(Some(s.ip_labels)), s.user_ip));
    set(F::AsnFraudLabels90d, unless_established(count(s.asn_labels), s.user_asn));
    set(F::SessionPagesBrowsed, count(s.session_browsed));
    // The month's payments to this payee: the middle of `event_id|payee|amount`.
    let payee = plan.texts.payee.as_str();
    let to_payee = |m: &&(std::sync::Arc<str>, i64)| !payee.is_empty() && m.0.rsplit('|').nth(1) == Some(payee);
    let mut to_payee: Vec<f64> = month.iter().filter(to_payee).filter_map(transfer_amount).collect();
    let payee_median = median(&mut to_payee);
    set(F::AmountVsPayeeMedian30d, if payee_median > 0.0 { ev.amount.unwrap_or(0.0) / payee_median } else { 0.0 });
    let device = plan.texts.device.as_str();
    let days = ro(s.login_days).map(OpResult::range).unwrap_or(&[]);
    let on_device = |m: &&(std::sync::Arc<str>, i64)| m.0.split_once('|').is_some_and(|(d, _)| d == device);
    set(F::DeviceLoginDays30d, days.iter().filter(on_device).count() as f64);
    // The change this event makes, or the user's last one.
    let change_at = if is_credential_change(ev) { Some(ts) } else { changed_at };
    let device_first = ro(s.user_device).map(|r| r.time().unwrap_or(ts));
    let new_since_change = match (change_at, device_first) {
        (Some(c), Some(d)) => ts - c <= CHANGED_DEVICE_MS && d >= c - HOUR_MS,
        _ => false,
    };
    set(F::DeviceNewSinceCredentialChange, flag(new_since_change && s.credential_change.is_some()));
    // Finite by construction: a valid event may carry any finite amount, and a ratio over one of
    // 5e-324 or a sum of two near f64::MAX is infinite, which JSON cannot carry (the enriched
    // event would fail to decode and the event get no verdict).
    for x in &mut v {
        *x = if x.is_nan() { 0.0 } else { x.clamp(-MAX_FEATURE_VALUE, MAX_FEATURE_VALUE) };
    }
    FeatureVector(v)
}

/// Replays events one at a time against an in-memory history: plan → execute → compute, at
/// each event's time (an [`expiring`](MemoryHistory::expiring) history expires keys by it).
/// The plan's and results' buffers are reused from event to event: allocating them per event
/// was a twentieth of replay.
#[derive(Default)]
pub struct Replayer {
    history: MemoryHistory,
    texts: Texts,
    ops: Vec<Op<'static>>,
    writes: Vec<Op<'static>>,
    results: Vec<OpResult>,
}

impl Replayer {
    pub fn new(history: MemoryHistory) -> Self {
        Replayer { history, ..Self::default() }
    }

    /// The features of `ev`, after which its history is recorded.
    pub fn replay(&mut self, ev: &ClickEvent) -> FeatureVector {
        self.history.advance_to(ev.ts);
        self.texts.fill(ev);
        let (ops, writes) = (recycle(std::mem::take(&mut self.ops)), recycle(std::mem::take(&mut self.writes)));
        let plan = plan_in(ev, &self.texts, ops, writes);
        // Most answers (counts, first-seen times) own nothing, and dropping each one through the
        // enum's drop glue (a call per answer) was a twentieth of replay's instructions.
        for answer in self.results.drain(..) {
            match answer {
                OpResult::Count(_) | OpResult::Time(_) | OpResult::Same | OpResult::Done => std::mem::forget(answer),
                owning => drop(owning),
            }
        }
        self.results.extend(plan.reads.iter().map(|op| self.history.apply(op)));
        for op in &plan.writes {
            self.history.apply(op);
        }
        let features = compute(ev, &plan, &self.results);
        (self.ops, self.writes) = (recycle(plan.reads), recycle(plan.writes));
        features
    }

    /// Each of `events` with its features, in order: [`Replayer::replay`] with the next event's
    /// text brought into the cache while this one is replayed. A lake's or a simulator's events,
    /// sorted by time, point to strings scattered over the heap, and the first hash of each was
    /// a cache miss: a tenth of replay's wall time for a twentieth of its instructions.
    pub fn replay_all<'r, 'e>(
        &'r mut self,
        events: &'e [ClickEvent],
    ) -> impl Iterator<Item = (&'e ClickEvent, FeatureVector)> + use<'r, 'e> {
        self.replay_each(events, |_, _| {})
    }

    /// [`Replayer::replay_all`] with labels fed in: each label of `labels` (sorted by `ts`) is
    /// applied ([`Replayer::label`]) before the first event at or after its time
    /// ([`feedback::due`]), as the enricher applies the labels topic live. Labels left when the
    /// events end stay in `labels` for the next call.
    pub fn replay_labelled<'r, 'e, 'l, L: Iterator<Item = &'l crate::Label>>(
        &'r mut self,
        events: &'e [ClickEvent],
        labels: &'r mut std::iter::Peekable<L>,
    ) -> impl Iterator<Item = (&'e ClickEvent, FeatureVector)> + use<'r, 'e, 'l, L> {
        self.replay_each(events, move |replay, ts| {
            for l in feedback::due(labels, ts) {
                replay.label(l);
            }
        })
    }

    /// The replay of `events` with the next event's text prefetched, `before` called with each
    /// event's time first.
    fn replay_each<'r, 'e, B: FnMut(&mut Self, i64) + 'r>(
        &'r mut self,
        events: &'e [ClickEvent],
        mut before: B,
    ) -> impl Iterator<Item = (&'e ClickEvent, FeatureVector)> + use<'r, 'e, B> {
        events.iter().enumerate().map(move |(i, ev)| {
            before(self, ev.ts);
            if let Some(next) = events.get(i + PREFETCH_AHEAD) {
                prefetch_text(next);
            }
            (ev, self.replay(ev))
        })
    }

    /// Applies a label at its own time: reads the entities of the session it names and marks
    /// them ([`feedback`]).
    pub fn label(&mut self, label: &crate::Label) {
        self.history.advance_to(label.ts);
        let read: Vec<OpResult> = feedback::reads(label).iter().map(|op| self.history.apply(op)).collect();
        for op in feedback::writes(label, &read) {
            self.history.apply(&op);
        }
    }

    pub fn history(&self) -> &MemoryHistory {
        &self.history
    }
}

/// How many events ahead [`Replayer::replay_all`] fetches text: one event's replay (~2 µs)
/// covers a memory access many times over.
const PREFETCH_AHEAD: usize = 1;

/// Asks the CPU to bring the start of each string that replaying `ev` reads into the cache.
fn prefetch_text(ev: &ClickEvent) {
    let optional = [&ev.user_id, &ev.device_id, &ev.user_agent, &ev.path, &ev.country, &ev.payee_id];
    for s in [&ev.event_id, &ev.session_id, &ev.event_type].into_iter().chain(optional.into_iter().flatten()) {
        prefetch(s.as_ptr());
    }
}

/// A cache hint for the line holding `at`; nothing on other architectures.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint. It reads nothing into the program, cannot fault, and
    // accepts any address; SSE, which it needs, is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// `v` emptied, as a vector of ops of another lifetime on the same allocation: ops are plain
/// data, and collecting into a type of the same layout reuses the buffer.
fn recycle<'b>(mut v: Vec<Op<'_>>) -> Vec<Op<'b>> {
    v.clear();
    v.into_iter().map(|_| -> Op<'b> { unreachable!("the vector was emptied") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, ts: i64, session: &str, user: Option<&str>, kind: &str, ip: &str) -> ClickEvent {
        ClickEvent {
            user_id: user.map(Into::into),
            device_id: Some("dev1".into()),
            country: Some("GB".into()),
            ..ClickEvent::new(id, ts, session, kind, ip.parse().unwrap())
        }
    }

    #[test]
    fn failed_logins_count_only_the_last_hour_of_event_time() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        for i in 0..3 {
            let mut e = ev(&format!("f{i}"), t0 + i * 60_000, "s1", Some("u1"), "login", "1.2.3.4");
            e.outcome = Some(crate::Outcome::Failure);
            h.replay(&e);
        }
        let later = ev("x", t0 + 30 * 60_000, "s1", Some("u1"), "page_view", "1.2.3.4");
        let f = h.replay(&later);
        assert_eq!(f.get(F::UserFailedLogins1h), 3.0);
        assert_eq!(f.get(F::IpFailedLogins1h), 3.0);
        let much_later = ev("y", t0 + 2 * HOUR_MS, "s2", Some("u1"), "page_view", "1.2.3.4");
        let f = h.replay(&much_later);
        assert_eq!(f.get(F::UserFailedLogins1h), 0.0);
        assert_eq!(f.get(F::UserFailedLogins24h), 3.0);
    }

    #[test]
    fn a_wave_of_failed_logins_from_rotating_addresses_shows_on_its_user_agent() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let login = |id: &str, ts, user: &str, ip: &str, ua: &str, ok: bool| {
            let mut e = ev(id, ts, id, Some(user), "login", ip);
            e.user_agent = Some(ua.into());
            e.outcome = Some(if ok { crate::Outcome::Success } else { crate::Outcome::Failure });
            e
        };
        let (wave_ua, other_ua) = ("Agent/1.0", "Agent/2.0");
        // A customer who retries a forgotten password counts once; a success counts as a try.
        h.replay(&login("r1", t0, "alice", "9.9.9.9", wave_ua, false));
        h.replay(&login("r2", t0 + 1_000, "alice", "9.9.9.9", wave_ua, false));
        h.replay(&login("ok", t0 + 2_000, "bob", "9.9.9.8", wave_ua, true));
        // Then eight users fail from eight addresses with the same agent.
        for i in 0..8 {
            h.replay(&login(
                &format!("w{i}"),
                t0 + 60_000 + i * 1_000,
                &format!("v{i}"),
                &format!("10.0.{i}.1"),
                wave_ua,
                false,
            ));
        }
        let f = h.replay(&login("next", t0 + 120_000, "carol", "10.0.9.1", wave_ua, false));
        assert_eq!(f.get(F::UaFailedLoginUsers10m), 9.0, "alice once, and the eight");
        assert_eq!(f.get(F::UaFailedLoginUsers1h), 9.0);
        assert!((f.get(F::UaFailedLoginShare10m) - 9.0 / 10.0).abs() < 1e-9, "bob tried and did not fail");
        assert_eq!(f.get(F::IpFailedLogins1h), 0.0, "no address repeats");
        let f = h.replay(&login("else", t0 + 120_000, "dave", "10.0.9.2", other_ua, false));
        assert_eq!((f.get(F::UaFailedLoginUsers10m), f.get(F::UaFailedLoginShare10m)), (0.0, 0.0), "another agent");
        // Past ten minutes the short window empties; the hour still counts the wave.
        let f = h.replay(&login("late", t0 + 20 * MINUTE_MS, "erin", "10.0.9.3", wave_ua, false));
        assert_eq!((f.get(F::UaFailedLoginUsers10m), f.get(F::UaFailedLoginShare10m)), (0.0, 0.0));
        assert_eq!(f.get(F::UaFailedLoginUsers1h), 10.0, "alice, the eight and carol");
        // Only logins are counted and carry these features.
        let mut page = ev("p", t0 + 20 * MINUTE_MS, "sp", Some("frank"), "page_view", "10.0.9.4");
        page.user_agent = Some(wave_ua.into());
        assert_eq!(h.replay(&page).get(F::UaFailedLoginUsers1h), 0.0);
    }

    #[test]
    fn login_attempts_that_name_no_user_count_by_their_session() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        // A site that names the user only once logged in: failed attempts carry no user id.
        let attempt = |id: &str, session: &str, ts, ip: &str| ClickEvent {
            user_id: None,
            user_agent: Some("Agent/1.0".into()),
            outcome: Some(crate::Outcome::Failure),
            ..ev(id, ts, session, None, "login", ip)
        };
        // A customer's three retries in one session count once.
        for i in 0..3 {
            h.replay(&attempt(&format!("r{i}"), "home", t0 + i * 1_000, "9.9.9.9"));
        }
        let f = h.replay(&attempt("r3", "home", t0 + 3_000, "9.9.9.9"));
        assert_eq!((f.get(F::UaFailedLoginUsers10m), f.get(F::IpDistinctUsers24h)), (1.0, 1.0));
        assert_eq!(f.get(F::IpFailedLogins1h), 3.0, "the three before it");
        // A tool that opens a session per attempt, from one address and then from many.
        for i in 0..4 {
            h.replay(&attempt(&format!("a{i}"), &format!("tool{i}"), t0 + 10_000 + i, "10.0.0.1"));
        }
        let f = h.replay(&attempt("a4", "tool4", t0 + 20_000, "10.0.0.1"));
        assert_eq!((f.get(F::IpDistinctUsers24h), f.get(F::IpFailedLogins1h)), (4.0, 4.0));
        assert_eq!(f.get(F::UaFailedLoginUsers10m), 5.0, "the customer's session and four of the tool's");
        assert_eq!((f.get(F::UserKnown), f.get(F::UserIpNew)), (0.0, 0.0), "no user, no user features");
        // A named user is still counted by name, apart from any session.
        let named = ClickEvent { user_id: Some("tool5".into()), ..attempt("a5", "tool5", t0 + 21_000, "10.0.0.1") };
        assert_eq!(h.replay(&named).get(F::IpDistinctUsers24h), 5.0);
        let f = h.replay(&attempt("a6", "tool5", t0 + 22_000, "10.0.0.1"));
        assert_eq!(f.get(F::IpDistinctUsers24h), 6.0, "the user tool5 and the session tool5 are two members");
    }

    #[test]
    fn an_agent_of_any_length_names_keys_of_the_same_short_length() {
        let agent_keys = |ua: String| {
            let mut e = ev("a", 1_700_000_000_000, "s", Some("u"), "login", "1.2.3.4");
            e.user_agent = Some(ua);
            let texts = Texts::of(&e);
            let p = plan(&e, &texts);
            let keys: Vec<String> = p
                .ops()
                .filter_map(|op| match op {
                    Op::Count { key, .. } | Op::Add { key, .. } => Some(key.to_string()),
                    _ => None,
                })
                .filter(|k| k.starts_with("fd:ua:"))
                .collect();
            keys
        };
        let (short, long) = (agent_keys("curl/8".into()), agent_keys("x:%".repeat(341)));
        assert_eq!(short.len(), 3, "two counts and the login's add: {short:?}");
        for k in short.iter().chain(&long) {
            assert_eq!(k.len(), "fd:ua:fl:".len() + 32, "{k}");
        }
        assert_ne!(short, long);
        assert_eq!(short, agent_keys("curl/8".into()), "the same agent, the same keys");
    }

    #[test]
    fn a_transfer_is_measured_against_the_largest_of_the_users_month() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let pay = |h: &mut Replayer, id: &str, ts: i64, user: &str, amount: f64| {
            let mut e = ev(id, ts, id, Some(user), "transfer", "1.2.3.4");
            (e.amount, e.payee_id) = (Some(amount), Some("landlord".into()));
            h.replay(&e)
        };
        let f = pay(&mut h, "first", t0, "u1", 400.0);
        assert_eq!((f.get(F::UserTransfers30d), f.get(F::AmountVsUserMax30d)), (0.0, 0.0), "nothing to compare with");
        pay(&mut h, "rent", t0 + 10 * DAY_MS, "u1", 800.0);
        pay(&mut h, "other user", t0 + 10 * DAY_MS, "u2", 50.0);
        let f = pay(&mut h, "scam", t0 + 20 * DAY_MS, "u1", 4_000.0);
        assert_eq!(f.get(F::UserTransfers30d), 2.0);
        assert_eq!(f.get(F::AmountVsUserMax30d), 5.0, "4000 against the 800 rent");
        // 31 days after the first and 21 after the rent: only the rent and the scam remain.
        let f = pay(&mut h, "later", t0 + 31 * DAY_MS, "u1", 400.0);
        assert_eq!(f.get(F::UserTransfers30d), 2.0);
        assert_eq!(f.get(F::AmountVsUserMax30d), 0.1);
        // Other events do not read the month.
        let f = h.replay(&ev("view", t0 + 31 * DAY_MS, "v", Some("u1"), "page_view", "1.2.3.4"));
        assert_eq!((f.get(F::UserTransfers30d), f.get(F::AmountVsUserMax30d)), (0.0, 0.0));
    }

    #[test]
    fn a_device_is_new_once_per_user() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let f = h.replay(&ev("a", t0, "s1", Some("u1"), "login", "1.2.3.4"));
        assert_eq!((f.get(F::UserKnown), f.get(F::UserDeviceNew)), (0.0, 1.0));
        let f = h.replay(&ev("b", t0 + DAY_MS, "s2", Some("u1"), "login", "1.2.3.4"));
        assert_eq!((f.get(F::UserKnown), f.get(F::UserDeviceNew)), (1.0, 0.0));
        assert!((f.get(F::UserDeviceAgeDays) - 1.0).abs() < 1e-9);
        let f = h.replay(&ev("c", t0 + DAY_MS, "s3", Some("u2"), "login", "1.2.3.4"));
        assert_eq!(f.get(F::UserDeviceNew), 1.0);
        assert_eq!(f.get(F::IpDistinctUsers24h), 1.0, "u1 logged in from this IP before");
    }

    #[test]
    fn session_marks_windows_and_ages_follow_the_session_and_the_clock_of_events() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let mut reset = ev("r", t0, "s1", Some("u1"), "password_reset", "10.0.0.1");
        reset.outcome = Some(crate::Outcome::Success);
        assert_eq!(h.replay(&reset).get(F::SessionSecsSincePasswordReset), 0.0, "not before itself");
        let mut terms = ev("t", t0 + 5_000, "s1", Some("u1"), "page_view", "10.0.0.1");
        terms.path = Some("/legal/terms".into());
        let f = h.replay(&terms);
        assert_eq!((f.get(F::SessionTermsRead), f.get(F::SessionSecsSincePasswordReset)), (0.0, 5.0));
        let mut login = ev("l", t0 + 20_000, "s1", Some("u1"), "login", "10.0.0.9");
        login.outcome = Some(crate::Outcome::Success);
        let f = h.replay(&login);
        assert_eq!((f.get(F::SessionTermsRead), f.get(F::SessionSecsSincePasswordReset)), (1.0, 20.0));
        assert_eq!((f.get(F::UserIpNew), f.get(F::UserSubnetNew)), (1.0, 0.0), "same /24, new address");
        let later = ev("x", t0 + 2 * DAY_MS, "s2", Some("u1"), "page_view", "10.0.0.9");
        let f = h.replay(&later);
        assert!((f.get(F::UserSubnetAgeDays) - 2.0).abs() < 1e-6 && f.get(F::UserIpAgeDays) < 2.0);
        assert_eq!(
            (f.get(F::SessionTermsRead), f.get(F::UserLogins24h)),
            (0.0, 0.0),
            "new session; login was 2 days ago"
        );
    }

    #[test]
    fn minute_hour_and_day_windows_count_logins_payees_transfers_and_subnets() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        for i in 0..3 {
            let mut f = ev(&format!("f{i}"), t0 + i * 20_000, "s1", Some("u1"), "login", &format!("10.0.1.{i}"));
            f.outcome = Some(crate::Outcome::Failure);
            h.replay(&f);
        }
        let mut ok = ev("ok", t0 + 70_000, "s1", Some("u1"), "login", "10.0.1.9");
        ok.outcome = Some(crate::Outcome::Success);
        let f = h.replay(&ok);
        assert_eq!(f.get(F::UserFailedLogins1m), 2.0, "the first failure is older than a minute");
        assert_eq!((f.get(F::SubnetFailedLogins1h), f.get(F::IpFailedLogins1m)), (3.0, 0.0));
        for (i, amount) in [(0, 10.0), (1, 20.0)] {
            let mut p = ev(&format!("p{i}"), t0 + 100_000 + i * 1000, "s1", Some("u1"), "add_payee", "10.0.1.9");
            p.payee_id = Some(format!("py{i}"));
            h.replay(&p);
            let mut t = ev(&format!("t{i}"), t0 + i * 2 * HOUR_MS + 200_000, "s1", Some("u1"), "transfer", "10.0.1.9");
            t.payee_id = Some(format!("py{i}"));
            t.amount = Some(amount);
            h.replay(&t);
        }
        let f = h.replay(&ev("y", t0 + 2 * HOUR_MS + 300_000, "s1", Some("u1"), "page_view", "10.0.1.9"));
        assert_eq!((f.get(F::UserPayeeAdds24h), f.get(F::UserLogins1h), f.get(F::UserLogins24h)), (2.0, 0.0, 1.0));
        assert_eq!((f.get(F::UserTransfers24h), f.get(F::UserTransfers1h)), (2.0, 1.0));
        assert_eq!((f.get(F::UserTransferAmount24h), f.get(F::UserTransferAmount1h)), (30.0, 20.0));
    }

    #[test]
    fn a_device_used_by_many_users_and_a_payee_paid_by_many_show_fan_out_and_fan_in() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        for u in 0..5 {
            let mut l =
                ev(&format!("l{u}"), t0 + u * 1000, &format!("s{u}"), Some(&format!("u{u}")), "login", "10.9.0.1");
            l.device_id = Some("shared-dev".into());
            h.replay(&l);
            let mut t = ev(
                &format!("t{u}"),
                t0 + u * 1000 + 500,
                &format!("s{u}"),
                Some(&format!("u{u}")),
                "transfer",
                "10.9.0.1",
            );
            t.payee_id = Some("mule".into());
            t.amount = Some(100.0);
            let f = h.replay(&t);
            assert_eq!(f.get(F::PayeeDistinctPayers24h), u as f64, "payers of the mule before this one");
        }
        let mut next = ev("n", t0 + 10_000, "s9", Some("u9"), "login", "10.9.0.1");
        next.device_id = Some("shared-dev".into());
        let f = h.replay(&next);
        assert_eq!((f.get(F::DeviceDistinctUsers24h), f.get(F::IpDistinctUsers24h)), (5.0, 5.0));
        let day_later = ev("d", t0 + DAY_MS + 20_000, "s10", Some("u10"), "login", "10.9.0.1");
        assert_eq!(h.replay(&day_later).get(F::IpDistinctUsers24h), 0.0, "the 24 h window moved on");
    }

    #[test]
    fn a_login_from_another_country_soon_after_the_last_is_impossible_travel() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let mut home = ev("a", t0, "s1", Some("u1"), "login", "10.0.0.1");
        home.outcome = Some(crate::Outcome::Success);
        h.replay(&home);
        let mut away = ev("b", t0 + 2 * HOUR_MS, "s2", Some("u1"), "login", "20.0.0.1");
        away.outcome = Some(crate::Outcome::Success);
        away.country = Some("TH".into());
        let f = h.replay(&away);
        assert_eq!((f.get(F::LoginCountryChanged), f.get(F::ImpossibleTravel)), (1.0, 1.0));
        assert!((f.get(F::HoursSinceLastLogin) - 2.0).abs() < 1e-9);
        let mut back = ev("c", t0 + 30 * HOUR_MS, "s3", Some("u1"), "login", "10.0.0.1");
        back.outcome = Some(crate::Outcome::Success);
        let f = h.replay(&back);
        assert_eq!((f.get(F::LoginCountryChanged), f.get(F::ImpossibleTravel)), (1.0, 0.0), "a day later is travel");
    }

    #[test]
    fn machine_cadence_has_a_low_gap_variation_and_human_browsing_a_high_one() {
        let cv_after = |gaps_ms: &[i64]| {
            let mut h = Replayer::default();
            let mut t = 1_700_000_000_000;
            let mut last = FeatureVector(vec![]);
            for (i, g) in gaps_ms.iter().enumerate() {
                t += g;
                last = h.replay(&ev(&format!("e{i}"), t, "s1", Some("u1"), "page_view", "10.0.0.1"));
            }
            (last.get(F::SessionGapCv), last.get(F::SessionRatePerMin), last.get(F::SessionEventsBefore))
        };
        let (bot_cv, bot_rate, n) = cv_after(&[0, 1000, 1010, 990, 1000, 1005, 995]);
        let (human_cv, _, _) = cv_after(&[0, 3000, 45_000, 8000, 120_000, 15_000, 2000]);
        assert!(bot_cv < 0.05 && human_cv > 0.8, "bot {bot_cv}, human {human_cv}");
        assert_eq!((bot_rate, n), (6.0, 6.0));
    }

    #[test]
    fn replaying_a_slice_gives_each_event_what_replaying_it_alone_gives() {
        let kinds = ["login", "page_view", "transfer", "add_payee", "password_reset"];
        let events: Vec<ClickEvent> = (0..60_i64)
            .map(|i| {
                let user = format!("u{}", i % 4);
                let ip = format!("10.0.{}.{}", i % 3, i % 5);
                let mut e = ev(
                    &format!("e{i}"),
                    1_700_000_000_000 + i * 7_000,
                    &format!("s{}", i % 6),
                    Some(&user),
                    kinds[i as usize % 5],
                    &ip,
                );
                e.outcome = Some(if i % 3 == 0 { crate::Outcome::Failure } else { crate::Outcome::Success });
                e.payee_id = Some(format!("p{}", i % 2));
                e.amount = Some(10.0 * i as f64);
                e
            })
            .collect();
        let mut alone = Replayer::default();
        let one_at_a_time: Vec<FeatureVector> = events.iter().map(|e| alone.replay(e)).collect();
        let mut all = Replayer::default();
        let sliced: Vec<(&ClickEvent, FeatureVector)> = all.replay_all(&events).collect();
        assert_eq!(sliced.len(), events.len());
        for ((e, f), (want_e, want)) in sliced.iter().zip(events.iter().zip(&one_at_a_time)) {
            assert_eq!((&e.event_id, f), (&want_e.event_id, want));
        }
        assert!(one_at_a_time.iter().any(|f| f.get(F::UserFailedLogins1h) > 0.0), "history reached the features");
    }

    #[test]
    fn feature_vectors_round_trip_through_json_by_name() {
        let mut h = Replayer::default();
        let f = h.replay(&ev("a", 1_700_000_000_000, "s1", Some("u1"), "login", "1.2.3.4"));
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"user_device_new\":1.0"));
        let back: FeatureVector = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<FeatureVector>("{\"is_login\":1}").is_err());
    }

    #[test]
    fn the_user_agent_memo_answers_as_a_fresh_scan_does_when_agents_share_slots() {
        fn digested(ua: &str) -> Option<(&str, u128)> {
            Some((ua, xxhash_rust::xxh3::xxh3_128(ua.as_bytes())))
        }
        // Four times as many agents as slots, so entries are replaced and slots shared.
        let agents: Vec<String> = (0..4 * SEEN_AGENTS_SLOTS)
            .map(|i| {
                if i % 3 == 0 { format!("Mozilla/5.0 HeadlessChrome/{i}") } else { format!("Mozilla/5.0 Firefox/{i}") }
            })
            .collect();
        for round in 0..2 {
            for ua in agents.iter().rev().skip(round) {
                assert_eq!(ua_automation(digested(ua)), AUTOMATION.is_match(ua.as_str()), "{ua}");
            }
        }
        assert!(ua_automation(digested("Mozilla/5.0 HeadlessChrome/0")));
        assert!(!ua_automation(digested("Mozilla/5.0 Firefox/1")));
        assert!(!ua_automation(None));
    }

    fn ok(mut e: ClickEvent) -> ClickEvent {
        e.outcome = Some(crate::Outcome::Success);
        e
    }

    fn pay(id: &str, ts: i64, session: &str, user: &str, payee: &str, amount: f64) -> ClickEvent {
        let mut e = ev(id, ts, session, Some(user), "transfer", "10.0.0.1");
        (e.payee_id, e.amount) = (Some(payee.into()), Some(amount));
        e
    }

    const CHROME_131: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    const CHROME_132: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

    #[test]
    fn a_session_that_continues_from_another_network_and_browser_shows_it_on_every_later_event() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let at = |id: &str, ts: i64, ip: &str, ua: &str, kind: &str| {
            let mut e = ev(id, ts, "s1", Some("u1"), kind, ip);
            e.user_agent = Some(ua.into());
            e
        };
        let f = h.replay(&ok(at("l", t0, "10.0.0.1", CHROME_131, "login")));
        assert_eq!((f.get(F::SessionNetworksSeen), f.get(F::SessionAgentsSeen)), (0.0, 0.0), "nothing before");
        assert_eq!(f.get(F::UserAgentFamilyNew), 1.0);
        // The customer's browser updates itself and the address changes within the /24.
        let f = h.replay(&at("a", t0 + 10_000, "10.0.0.7", CHROME_132, "page_view"));
        assert_eq!((f.get(F::SessionNetworksSeen), f.get(F::SessionAgentsSeen)), (1.0, 1.0));
        assert_eq!(f.get(F::UserAgentFamilyNew), 0.0, "a new version is not a new browser");
        // The stolen cookie goes on from another network and an iPhone.
        h.replay(&at("p", t0 + 60_000, "45.140.1.2", IPHONE, "page_view"));
        let mut add = at("add", t0 + 70_000, "45.140.1.2", IPHONE, "add_payee");
        add.payee_id = Some("mule".into());
        h.replay(&add);
        let mut tx = at("tx", t0 + 80_000, "45.140.1.2", IPHONE, "transfer");
        (tx.payee_id, tx.amount) = (Some("mule".into()), Some(900.0));
        let f = h.replay(&tx);
        assert_eq!((f.get(F::SessionNetworksSeen), f.get(F::SessionAgentsSeen)), (2.0, 2.0), "still visible");
        assert_eq!(f.get(F::SessionIpChanged), 0.0, "the address changed two events earlier");
        // Another session of the same customer starts afresh.
        let f = h.replay(&ev("n", t0 + DAY_MS, "s2", Some("u1"), "page_view", "10.0.0.1"));
        assert_eq!(f.get(F::SessionNetworksSeen), 0.0);
    }

    #[test]
    fn a_device_that_logged_in_quietly_for_days_makes_its_first_payment_of_several_times_the_usual() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        for (i, amount) in [40.0, 60.0, 50.0, 400.0].into_iter().enumerate() {
            h.replay(&pay(&format!("old{i}"), t0 + i as i64 * DAY_MS, &format!("o{i}"), "u1", "grocer", amount));
        }
        // The attacker's device logs in on three days, browsing like the customer.
        let attacker = |id: &str, ts: i64, kind: &str| ClickEvent {
            device_id: Some("evil".into()),
            ..ev(id, ts, id, Some("u1"), kind, "10.0.0.1")
        };
        for d in 5..8 {
            let f = h.replay(&ok(attacker(&format!("l{d}"), t0 + d * DAY_MS, "login")));
            assert_eq!(f.get(F::UserDeviceNew), if d == 5 { 1.0 } else { 0.0 });
        }
        let mut add = attacker("add", t0 + 8 * DAY_MS, "add_payee");
        add.payee_id = Some("mule".into());
        assert_eq!(h.replay(&add).get(F::UserPayeeNew), 1.0);
        let mut tx = attacker("tx", t0 + 8 * DAY_MS + 30_000, "transfer");
        (tx.payee_id, tx.amount) = (Some("mule".into()), Some(1_100.0));
        let f = h.replay(&tx);
        assert_eq!(f.get(F::UserPayeeNew), 0.0, "the payee was added a moment ago");
        assert_eq!((f.get(F::UserPayeeFirstTransfer), f.get(F::UserDeviceFirstTransfer)), (1.0, 1.0));
        assert!((f.get(F::UserDeviceAgeDays) - 3.0).abs() < 1e-3, "a device three days old");
        // The median of 40, 50, 60 and 400 is 55: twenty times the usual, under three times the largest.
        assert_eq!(f.get(F::AmountVsUserMedian30d), 20.0);
        assert_eq!(f.get(F::AmountVsUserMax30d), 2.75);
        assert!((f.get(F::UserAgeDays) - 8.0).abs() < 1e-3);
        // The second payment from it, to the same payee, is neither first.
        let mut again = tx.clone();
        (again.event_id, again.ts) = ("tx2".into(), tx.ts + 60_000);
        let f = h.replay(&again);
        assert_eq!((f.get(F::UserPayeeFirstTransfer), f.get(F::UserDeviceFirstTransfer)), (0.0, 0.0));
        assert_eq!(
            h.replay(&ev("view", tx.ts, "v", Some("u1"), "page_view", "10.0.0.1")).get(F::AmountVsUserMedian30d),
            0.0
        );
    }

    #[test]
    fn the_time_a_customer_spends_on_the_payee_page_before_adding_and_paying_is_measured() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let mut page = ev("p", t0, "s1", Some("u1"), "page_view", "10.0.0.1");
        page.path = Some("/payments/new-beneficiary".into());
        assert_eq!(h.replay(&page).get(F::SessionSecsOnPayeePage), 0.0, "page views carry no dwell time");
        let mut again = page.clone();
        (again.event_id, again.ts) = ("p2".into(), t0 + 100_000);
        h.replay(&again);
        let mut add = ev("a", t0 + 240_000, "s1", Some("u1"), "add_payee", "10.0.0.1");
        add.payee_id = Some("new".into());
        assert_eq!(h.replay(&add).get(F::SessionSecsOnPayeePage), 240.0, "from the first view");
        let f = h.replay(&pay("t", t0 + 300_000, "s1", "u1", "new", 5_000.0));
        assert_eq!((f.get(F::SessionSecsOnPayeePage), f.get(F::SessionSecsSincePayeeAdd)), (300.0, 60.0));
        // A session that pays without opening a payee page.
        assert_eq!(h.replay(&pay("t2", t0 + 400_000, "s2", "u1", "new", 5.0)).get(F::SessionSecsOnPayeePage), 0.0);
    }

    #[test]
    fn a_device_running_several_accounts_over_weeks_and_a_payee_paid_by_many_in_a_week_are_counted() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let on = |id: &str, ts: i64, user: &str, kind: &str| ClickEvent {
            device_id: Some("herder".into()),
            ..ev(id, ts, id, Some(user), kind, "10.0.0.1")
        };
        // Four accounts log in from one device, days apart; a failed login does not count.
        for (d, user) in ["m1", "m2", "m3", "m4"].iter().enumerate() {
            h.replay(&ok(on(&format!("l{d}"), t0 + d as i64 * 5 * DAY_MS, user, "login")));
        }
        h.replay(&ClickEvent { outcome: Some(crate::Outcome::Failure), ..on("bad", t0 + 16 * DAY_MS, "m5", "login") });
        let mut tx = on("tx", t0 + 16 * DAY_MS, "m4", "transfer");
        (tx.payee_id, tx.amount) = (Some("crypto".into()), Some(900.0));
        let f = h.replay(&tx);
        assert_eq!(f.get(F::DeviceUsers30d), 4.0);
        assert_eq!(f.get(F::DeviceDistinctUsers24h), 2.0, "the day sees m4 and m5's attempt only");
        assert_eq!(
            h.replay(&on("view", t0 + 16 * DAY_MS, "m4", "page_view")).get(F::DeviceUsers30d),
            0.0,
            "page views do not read it"
        );
        let f = h.replay(&ok(on("late", t0 + 36 * DAY_MS, "m9", "login")));
        assert_eq!(f.get(F::DeviceUsers30d), 2.0, "the month moved on past m1 and m2");
        // Victims pay one payee over a week.
        for v in 0..5 {
            h.replay(&pay(&format!("v{v}"), t0 + v * DAY_MS, &format!("vs{v}"), &format!("victim{v}"), "mule", 100.0));
        }
        let f = h.replay(&pay("v5", t0 + 5 * DAY_MS, "vs5", "victim5", "mule", 100.0));
        assert_eq!((f.get(F::PayeeDistinctPayers24h), f.get(F::PayeeDistinctPayers7d)), (1.0, 5.0));
    }

    #[test]
    fn a_credential_change_is_remembered_across_sessions_until_the_payment() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let f = h.replay(&ok(ev("l0", t0, "s0", Some("u1"), "login", "10.0.0.1")));
        assert_eq!(f.get(F::UserHoursSinceCredentialChange), 720.0, "none known");
        let f = h.replay(&ev("r", t0 + HOUR_MS, "s1", Some("u1"), "password_reset", "10.0.0.1"));
        assert_eq!(f.get(F::UserHoursSinceCredentialChange), 720.0, "a change reports the one before it");
        let f = h.replay(&ok(ev("l", t0 + 7 * HOUR_MS, "s2", Some("u1"), "login", "10.0.0.1")));
        assert_eq!(f.get(F::UserHoursSinceCredentialChange), 6.0);
        let f = h.replay(&pay("t", t0 + 9 * HOUR_MS, "s2", "u1", "p", 10.0));
        assert_eq!((f.get(F::UserHoursSinceCredentialChange), f.get(F::SessionSecsSincePasswordReset)), (8.0, 0.0));
        let f = h.replay(&ev("c", t0 + 10 * HOUR_MS, "s2", Some("u1"), "profile_change", "10.0.0.1"));
        assert_eq!(f.get(F::UserHoursSinceCredentialChange), 9.0);
        let f = h.replay(&ok(ev("l2", t0 + 11 * HOUR_MS, "s3", Some("u1"), "login", "10.0.0.1")));
        assert_eq!(f.get(F::UserHoursSinceCredentialChange), 1.0, "the profile change is the latest");
        assert_eq!(
            h.replay(&ok(ev("o", t0 + 11 * HOUR_MS, "s4", Some("u2"), "login", "10.0.0.1")))
                .get(F::UserHoursSinceCredentialChange),
            720.0,
            "another user"
        );
    }

    #[test]
    fn a_session_that_goes_straight_to_the_payee_page_has_browsed_nothing_before_acting() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let page = |id: &str, t: i64, sid: &str, path: &str| ClickEvent {
            path: Some(path.into()),
            ..ev(id, t, sid, Some("u1"), "page_view", "10.0.0.1")
        };
        let add = |id: &str, t: i64, sid: &str| ClickEvent {
            payee_id: Some("p1".into()),
            ..ev(id, t, sid, Some("u1"), "add_payee", "10.0.0.1")
        };
        // A customer: login, overview, a statement, the payee page, then adds and pays.
        h.replay(&ok(ev("a0", t0, "sa", Some("u1"), "login", "10.0.0.1")));
        for (i, path) in ["/login", "/accounts", "/accounts/statements/2026-11", "/payees/new"].iter().enumerate() {
            let f = h.replay(&page(&format!("a{}", i + 1), t0 + (i as i64 + 1) * 1000, "sa", path));
            assert_eq!(f.get(F::SessionPagesBrowsed), 0.0, "a page view does not act");
        }
        assert_eq!(h.replay(&add("a5", t0 + 6000, "sa")).get(F::SessionPagesBrowsed), 2.0, "overview and statement");
        let f = h.replay(&pay("a6", t0 + 7000, "sa", "u1", "p1", 10.0));
        assert_eq!(f.get(F::SessionPagesBrowsed), 2.0, "the payee page is not browsing");
        // A deep link (or a script): login, straight to the payee page, add, pay.
        h.replay(&ok(ev("b0", t0, "sb", Some("u1"), "login", "10.0.0.1")));
        h.replay(&page("b1", t0 + 1000, "sb", "/beneficiaries/add"));
        assert_eq!(h.replay(&add("b2", t0 + 2000, "sb")).get(F::SessionPagesBrowsed), 0.0);
        let f = h.replay(&ev("b3", t0 + 3000, "sb", Some("u1"), "password_change", "10.0.0.1"));
        assert_eq!(f.get(F::SessionPagesBrowsed), 0.0, "a credential change acts too");
    }

    #[test]
    fn a_device_first_seen_around_a_credential_change_marks_the_chain_for_a_week() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let on = |e: ClickEvent, device: &str| ClickEvent { device_id: Some(device.into()), ..e };
        let chain = F::DeviceNewSinceCredentialChange;
        // The customer's own phone for a month, then a reset from it: not a new device.
        assert_eq!(h.replay(&on(ok(ev("l0", t0, "s0", Some("u1"), "login", "10.0.0.1")), "own")).get(chain), 0.0);
        let reset = |id: &str, t: i64, sid: &str| ev(id, t, sid, Some("u1"), "password_reset", "10.0.0.1");
        assert_eq!(h.replay(&on(reset("r0", t0 + 30 * DAY_MS, "s1"), "own")).get(chain), 0.0);
        // A reset from a device never seen, then a login and a payment from it.
        let t1 = t0 + 31 * DAY_MS;
        assert_eq!(h.replay(&on(reset("r1", t1, "s2"), "new")).get(chain), 1.0, "the reset itself");
        let f = h.replay(&on(ok(ev("l1", t1 + 2 * HOUR_MS, "s3", Some("u1"), "login", "10.0.0.9")), "new"));
        assert_eq!(f.get(chain), 1.0);
        assert_eq!(h.replay(&on(pay("t1", t1 + 3 * HOUR_MS, "s3", "u1", "p", 10.0), "new")).get(chain), 1.0);
        // A device first seen after the change, within the week; the customer's own is not.
        let f = h.replay(&on(ok(ev("l2", t1 + 2 * DAY_MS, "s4", Some("u1"), "login", "10.0.0.9")), "other"));
        assert_eq!(f.get(chain), 1.0);
        let f = h.replay(&on(ok(ev("l3", t1 + 2 * DAY_MS, "s5", Some("u1"), "login", "10.0.0.1")), "own"));
        assert_eq!(f.get(chain), 0.0);
        // A week on, the change is old news; a page view never says.
        let f = h.replay(&on(pay("t2", t1 + 8 * DAY_MS, "s6", "u1", "p", 10.0), "new"));
        assert_eq!(f.get(chain), 0.0);
        let f = h.replay(&on(ev("v", t1 + 3 * HOUR_MS, "s3", Some("u1"), "page_view", "10.0.0.9"), "new"));
        assert_eq!(f.get(chain), 0.0);
    }

    #[test]
    fn a_payment_is_measured_against_the_users_own_payments_to_the_same_payee() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        for (i, amount) in [100.0, 200.0, 300.0].into_iter().enumerate() {
            let f = h.replay(&pay(&format!("r{i}"), t0 + i as i64 * DAY_MS, "s", "u1", "rent", amount));
            assert_eq!(f.get(F::AmountVsPayeeMedian30d), if i == 0 { 0.0 } else { amount / [100.0, 150.0][i - 1] });
        }
        h.replay(&pay("g", t0 + 3 * DAY_MS, "s2", "u1", "grocer", 20.0));
        let f = h.replay(&pay("r3", t0 + 4 * DAY_MS, "s3", "u1", "rent", 600.0));
        assert_eq!(f.get(F::AmountVsPayeeMedian30d), 3.0, "the grocer's 20 is not the landlord's");
        let f = h.replay(&pay("n", t0 + 4 * DAY_MS, "s3", "u1", "stranger", 600.0));
        assert_eq!(f.get(F::AmountVsPayeeMedian30d), 0.0, "a first payment has no payee history");
        let f = h.replay(&pay("o", t0 + 4 * DAY_MS, "s4", "u2", "rent", 600.0));
        assert_eq!(f.get(F::AmountVsPayeeMedian30d), 0.0, "another user's payments are not this one's");
        let f = h.replay(&pay("late", t0 + 45 * DAY_MS, "s5", "u1", "rent", 600.0));
        assert_eq!(f.get(F::AmountVsPayeeMedian30d), 0.0, "a month on, the history is gone");
    }

    #[test]
    fn a_device_that_logged_in_quietly_for_days_shows_them_on_its_first_payment() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 10 * HOUR_MS;
        let on = |e: ClickEvent, device: &str| ClickEvent { device_id: Some(device.into()), ..e };
        // The attacker's device logs in on days 0, 1 (twice) and 3, then pays on day 3.
        for (i, day) in [0, 1, 1, 3].into_iter().enumerate() {
            let t = t0 + day * DAY_MS + i as i64 * 60_000;
            let f =
                h.replay(&on(ok(ev(&format!("l{i}"), t, &format!("s{i}"), Some("u1"), "login", "10.0.0.1")), "atk"));
            assert_eq!(f.get(F::DeviceLoginDays30d), 0.0, "read by transfers only");
        }
        let f = h.replay(&on(pay("t", t0 + 3 * DAY_MS + HOUR_MS, "s3", "u1", "p", 10.0), "atk"));
        assert_eq!(f.get(F::DeviceLoginDays30d), 3.0, "three distinct days");
        let failed = ClickEvent {
            outcome: Some(crate::Outcome::Failure),
            ..ev("x", t0 + 4 * DAY_MS, "s9", Some("u1"), "login", "10.0.0.1")
        };
        h.replay(&on(failed, "atk"));
        let f = h.replay(&on(pay("t2", t0 + 4 * DAY_MS + HOUR_MS, "s9", "u1", "p", 10.0), "atk"));
        assert_eq!(f.get(F::DeviceLoginDays30d), 3.0, "a failed login is not a day in the account");
        let f = h.replay(&on(pay("t3", t0 + 4 * DAY_MS, "s8", "u1", "p", 10.0), "other"));
        assert_eq!(f.get(F::DeviceLoginDays30d), 0.0, "another device's days are its own");
        let f = h.replay(&on(pay("t4", t0 + 40 * DAY_MS, "s7", "u1", "p", 10.0), "atk"));
        assert_eq!(f.get(F::DeviceLoginDays30d), 0.0, "days older than 30 are gone");
    }

    #[test]
    fn a_network_or_city_from_the_cdn_is_new_once_per_user_and_absent_attributes_say_nothing() {
        let mut h = Replayer::default();
        let t0 = 1_700_000_000_000;
        let with = |id: &str, user: &str, attrs: serde_json::Value| ClickEvent {
            attrs: attrs.as_object().cloned(),
            ..ok(ev(id, t0, id, Some(user), "login", "10.0.0.1"))
        };
        let f = h.replay(&with("a", "u1", serde_json::json!({"asn": 2856, "city": "Leeds"})));
        assert_eq!((f.get(F::UserAsnNew), f.get(F::UserCityNew)), (1.0, 1.0));
        let f = h.replay(&with("b", "u1", serde_json::json!({"asn": "2856", "city": "Leeds"})));
        assert_eq!((f.get(F::UserAsnNew), f.get(F::UserCityNew)), (0.0, 0.0), "a number and its text are one network");
        let f = h.replay(&with("c", "u1", serde_json::json!({"asn": 9009, "city": "Leeds", "vpn": true})));
        assert_eq!((f.get(F::UserAsnNew), f.get(F::UserCityNew)), (1.0, 0.0));
        let f = h.replay(&with("d", "u1", serde_json::json!({})));
        assert_eq!((f.get(F::UserAsnNew), f.get(F::UserCityNew)), (0.0, 0.0));
        assert_eq!(h.replay(&with("e", "u2", serde_json::json!({"city": "Leeds"}))).get(F::UserCityNew), 1.0);
    }

    #[test]
    fn the_schema_hash_is_stable_and_names_are_unique() {
        assert_eq!(feature_schema_hash(), feature_schema_hash());
        let mut names: Vec<_> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
    }

    #[test]
    fn a_fraud_label_marks_its_sessions_address_and_cdn_network_for_those_new_to_them() {
        use crate::{Label, LabelKind};
        let t0 = 1_700_000_000_000;
        let at = |id: &str, ts: i64, session: &str, user: &str, ip: &str, asn: Option<u32>| ClickEvent {
            attrs: asn.and_then(|a| serde_json::json!({ "asn": a }).as_object().cloned()),
            ..ok(ev(id, ts, session, Some(user), "login", ip))
        };
        let label = Label {
            label_id: "l1".into(),
            ts: t0 + DAY_MS,
            user_id: "victim".into(),
            session_id: Some("s-ato".into()),
            event_id: None,
            is_fraud: true,
            kind: Some(LabelKind::AccountTakeover),
            source: None,
        };
        let events = [
            at("e0", t0 - 3 * DAY_MS, "s-old", "frank", "198.51.100.20", Some(64500)),
            at("e1", t0, "s-ato", "victim", "203.0.113.5", Some(64500)),
            at("e2", t0 + HOUR_MS, "s-before", "carol", "203.0.113.5", Some(64500)),
            // After the label: a stranger from the same address and network, frank on the
            // network he has used for days, and someone with no network attribute at all.
            at("e3", t0 + 2 * DAY_MS, "s-new", "dave", "203.0.113.5", Some(64500)),
            at("e4", t0 + 2 * DAY_MS, "s-frank", "frank", "198.51.100.21", Some(64500)),
            at("e5", t0 + 2 * DAY_MS, "s-none", "gina", "203.0.113.5", None),
        ];
        let mut replay = Replayer::default();
        let labels = [label];
        let mut feed = labels.iter().peekable();
        let fv: Vec<FeatureVector> = replay.replay_labelled(&events, &mut feed).map(|(_, f)| f).collect();
        let marks = |i: usize| [F::IpFraudLabels90d, F::AsnFraudLabels90d].map(|x| fv[i].get(x));
        assert_eq!(marks(2), [0.0, 0.0], "labels count only from their own time");
        assert_eq!(marks(3), [1.0, 1.0], "the confirmed session's address and network");
        assert_eq!(marks(4), [0.0, 0.0], "frank's network of days, and an address the fraud never used");
        assert_eq!(marks(5), [1.0, 0.0], "no network attribute says nothing of networks");
    }

    #[test]
    fn a_fraud_label_marks_its_sessions_device_network_and_payee_for_later_events_from_its_own_time() {
        use crate::{Label, LabelKind};
        let t0 = 1_700_000_000_000;
        let pay = |id: &str, ts: i64, session: &str, user: &str, ip: &str, device: &str| ClickEvent {
            device_id: Some(device.into()),
            payee_id: Some("mule-acct".into()),
            amount: Some(900.0),
            ..ev(id, ts, session, Some(user), "transfer", ip)
        };
        let label = |id: &str, ts: i64, session: Option<&str>, user: &str, fraud: bool, kind: LabelKind| Label {
            label_id: id.into(),
            ts,
            user_id: user.into(),
            session_id: session.map(Into::into),
            event_id: None,
            is_fraud: fraud,
            kind: Some(kind),
            source: None,
        };
        let labels = [
            // The takeover's session, confirmed a day later; a legitimate label marks nothing.
            label("l1", t0 + DAY_MS, Some("s-ato"), "victim", true, LabelKind::AccountTakeover),
            label("l2", t0 + DAY_MS, Some("s-ok"), "bob", false, LabelKind::Other),
            // An account confirmed as a mule.
            label("l3", t0 + DAY_MS, None, "mule", true, LabelKind::Mule),
        ];
        let events = [
            pay("e1", t0, "s-ato", "victim", "203.0.113.5", "attacker-phone"),
            ClickEvent {
                payee_id: Some("landlord".into()),
                ..pay("e2", t0 + 1000, "s-ok", "bob", "198.51.100.7", "bobs-phone")
            },
            // Before the label is known: nothing to see.
            pay("e3", t0 + HOUR_MS, "s-next", "carol", "203.0.113.9", "attacker-phone"),
            ev("e4", t0 + HOUR_MS, "s-m1", Some("mule"), "login", "192.0.2.1"),
            // After: the device, the /24 and the payee carry the label; the mule its own.
            pay("e5", t0 + 2 * DAY_MS, "s-later", "dave", "203.0.113.77", "attacker-phone"),
            pay("e6", t0 + 2 * DAY_MS, "s-bob2", "bob", "198.51.100.7", "bobs-phone"),
            ev("e7", t0 + 2 * DAY_MS, "s-m2", Some("mule"), "login", "192.0.2.1"),
        ];
        let mut replay = Replayer::default();
        let mut feed = labels.iter().peekable();
        let fv: Vec<FeatureVector> = replay.replay_labelled(&events, &mut feed).map(|(_, f)| f).collect();
        let marks = |f: &FeatureVector| {
            [F::DeviceFraudLabels90d, F::SubnetFraudLabels90d, F::PayeeFraudLabels90d, F::UserMuleLabels180d]
                .map(|x| f.get(x))
        };
        assert_eq!(marks(&fv[2]), [0.0; 4], "labels count only from their own time");
        assert_eq!(marks(&fv[3]), [0.0; 4]);
        assert_eq!(marks(&fv[4]), [1.0, 1.0, 1.0, 0.0], "device, /24 and payee of the confirmed session");
        assert_eq!(marks(&fv[5])[..2], [0.0, 0.0], "a legitimate label marks nothing: {:?}", marks(&fv[5]));
        assert_eq!(marks(&fv[5])[2], 1.0, "but bob pays, for the first time, the payee a confirmed fraud paid");
        assert_eq!(marks(&fv[6]), [0.0, 0.0, 0.0, 1.0], "the mule's own account");
        // A scam victim's own phone, used for a week, is marked by the label on the scam's
        // session but not held against her next session: the mark speaks of what is new to her.
        let own = |id: &str, ts: i64, session: &str| ClickEvent {
            device_id: Some("erin-phone".into()),
            ..ev(id, ts, session, Some("erin"), "page_view", "192.0.2.200")
        };
        let scam_label = [label("l9", t0 + DAY_MS, Some("s-scam"), "erin", true, LabelKind::Scam)];
        let story =
            [own("v1", t0 - 7 * DAY_MS, "s-old"), own("v2", t0, "s-scam"), own("v3", t0 + 2 * DAY_MS, "s-after")];
        let mut replay = Replayer::default();
        let mut feed = scam_label.iter().peekable();
        let after = replay.replay_labelled(&story, &mut feed).map(|(_, f)| f).last().unwrap();
        assert_eq!(marks(&after)[..2], [0.0, 0.0], "her own phone and network: {:?}", marks(&after));
        // The same label twice (a redelivery) counts once.
        let mut again = Replayer::default();
        let twice = [labels[0].clone(), labels[0].clone()];
        let mut feed = twice.iter().peekable();
        let f = again.replay_labelled(&events, &mut feed).map(|(_, f)| f).nth(4).unwrap();
        assert_eq!(f.get(F::DeviceFraudLabels90d), 1.0);
    }

    #[test]
    fn extreme_but_valid_amounts_give_finite_features_that_survive_json() {
        let t0 = 1_700_000_000_000;
        let mut replay = Replayer::default();
        for (i, amount) in [5e-324, 1.0, 1.7e308, 1.7e308, f64::MAX, 0.0].into_iter().enumerate() {
            let e = ClickEvent {
                amount: Some(amount),
                payee_id: Some("p".into()),
                ..ev(&format!("x{i}"), t0 + i as i64 * 1000, "s-x", Some("u-x"), "transfer", "192.0.2.9")
            };
            e.validate().unwrap();
            let f = replay.replay(&e);
            assert!(f.0.iter().all(|x| x.is_finite() && x.abs() <= MAX_FEATURE_VALUE), "{i}: {f:?}");
            let back: FeatureVector = serde_json::from_slice(&serde_json::to_vec(&f).unwrap()).unwrap();
            assert_eq!(back, f, "{i}");
        }
    }
}
