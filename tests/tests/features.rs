//! Each feature family on a scripted scenario, computed the way the enricher does it live
//! (micro-batches against a real redis-server), checked against the values the scenario implies,
//! and against the in-memory history the trainer replays with.

use e2e_tests::history::live_features;
use e2e_tests::stack::Stack;
use enricher::store::{MemoryStore, RedisStore};
use models::features::{F, FeatureVector};
use models::{ClickEvent, Outcome};

const T0: i64 = 1_767_000_000_000;
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A scenario's events, built in order.
#[derive(Default)]
struct Script(Vec<ClickEvent>);

impl Script {
    fn push(&mut self, at: i64, session: &str, user: Option<&str>, kind: &str, ip: &str) -> &mut ClickEvent {
        let n = self.0.len();
        self.0.push(ClickEvent {
            user_id: user.map(Into::into),
            device_id: Some(format!("dev-{session}")),
            user_agent: Some("Mozilla/5.0".into()),
            country: Some("GB".into()),
            ..ClickEvent::new(&format!("e{n}"), T0 + at, session, kind, ip.parse().unwrap())
        });
        &mut self.0[n]
    }
}

/// The scenario's features through Redis (batches of 7, so batches split scenarios mid-way)
/// after checking that the in-memory history gives the same vectors.
async fn run(stack: &Stack, script: &Script) -> Vec<FeatureVector> {
    let redis = RedisStore::connect(&stack.redis_url()).await.unwrap();
    let live = live_features(&redis, &script.0, 7).await;
    let offline = live_features(&MemoryStore::default(), &script.0, 1).await;
    assert_eq!(live, offline, "Redis and memory disagree");
    live
}

#[tokio::test]
async fn credential_stuffing_shows_in_ip_subnet_device_agent_and_user_windows() {
    const AGENT: &str = "python-requests/2.31";
    let stack = Stack::start();
    let mut s = Script::default();
    // 30 usernames tried from one proxy IP and one device, a few seconds apart.
    for i in 0..30 {
        let e = s.push(i * 5 * SEC, &format!("st{i}"), Some(&format!("victim{i}")), "login", "203.0.113.10");
        e.outcome = Some(Outcome::Failure);
        e.device_id = Some("stuffer-box".into());
        e.user_agent = Some(AGENT.into());
    }
    // A neighbour in the same /24 with the same agent, then the same IP a day and a bit later.
    let nb = s.push(3 * MIN, "nb", Some("victim0"), "login", "203.0.113.99");
    (nb.outcome, nb.user_agent) = (Some(Outcome::Failure), Some(AGENT.into()));
    s.push(DAY + 2 * HOUR, "late", Some("victim0"), "page_view", "203.0.113.10");
    let f = run(&stack, &s).await;
    let last_attempt = &f[29];
    assert_eq!(last_attempt.get(F::IpFailedLogins1h), 29.0);
    assert_eq!(last_attempt.get(F::IpFailedLogins24h), 29.0);
    // Windows include both ends: attempts at 85 s … 140 s, for the one at 145 s.
    assert_eq!(last_attempt.get(F::IpFailedLogins1m), 12.0);
    assert_eq!(last_attempt.get(F::IpDistinctUsers24h), 29.0);
    assert_eq!(last_attempt.get(F::IpLogins1h), 29.0);
    assert_eq!(last_attempt.get(F::DeviceDistinctUsers24h), 29.0);
    assert_eq!(last_attempt.get(F::DeviceFailedLogins1h), 29.0);
    assert_eq!(last_attempt.get(F::IsLoginFailure), 1.0);
    assert_eq!(last_attempt.get(F::UaFailedLoginUsers10m), 29.0, "site-wide, by agent");
    assert_eq!(last_attempt.get(F::UaFailedLoginUsers1h), 29.0);
    assert_eq!(last_attempt.get(F::UaFailedLoginShare10m), 1.0);
    let neighbour = &f[30];
    assert_eq!(neighbour.get(F::UaFailedLoginUsers10m), 30.0, "victim0 tried again counts once");
    assert_eq!(neighbour.get(F::SubnetFailedLogins1h), 30.0, "the /24 saw every attempt");
    assert_eq!(neighbour.get(F::SubnetFailedLogins24h), 30.0);
    assert_eq!(neighbour.get(F::IpFailedLogins1h), 0.0, "a new address in the /24");
    assert_eq!(neighbour.get(F::UserFailedLogins1h), 1.0, "victim0 was tried once before");
    let late = &f[31];
    assert_eq!(late.get(F::IpFailedLogins24h), 0.0, "the 24 h window has passed");
    assert_eq!(late.get(F::DeviceFailedLogins24h), 0.0);
    assert_eq!(late.get(F::UserFailedLogins24h), 0.0);
}

#[tokio::test]
async fn account_takeover_shows_as_new_device_and_impossible_travel() {
    let stack = Stack::start();
    let mut s = Script::default();
    let login = |s: &mut Script, at: i64, session: &str, ip: &str, country: &str, device: &str| {
        let e = s.push(at, session, Some("alice"), "login", ip);
        e.outcome = Some(Outcome::Success);
        e.country = Some(country.into());
        e.device_id = Some(device.into());
    };
    login(&mut s, 0, "a1", "81.2.69.10", "GB", "alice-phone");
    login(&mut s, 3 * DAY, "a2", "81.2.69.10", "GB", "alice-phone");
    // Two hours later, from Brazil on a device never seen for her.
    login(&mut s, 3 * DAY + 2 * HOUR, "x1", "177.10.0.5", "BR", "attacker-laptop");
    // Ten hours after that, back home: changed country, but not impossible.
    login(&mut s, 3 * DAY + 12 * HOUR, "a3", "81.2.69.10", "GB", "alice-phone");
    let f = run(&stack, &s).await;
    assert_eq!((f[0].get(F::UserKnown), f[0].get(F::UserDeviceNew)), (0.0, 1.0));
    assert_eq!(f[1].get(F::UserDeviceNew), 0.0);
    assert!((f[1].get(F::UserDeviceAgeDays) - 3.0).abs() < 1e-9);
    assert!((f[1].get(F::HoursSinceLastLogin) - 72.0).abs() < 1e-9);
    assert_eq!(f[1].get(F::ImpossibleTravel), 0.0);
    let takeover = &f[2];
    assert_eq!(takeover.get(F::UserDeviceNew), 1.0);
    assert_eq!(takeover.get(F::UserIpNew), 1.0);
    assert_eq!(takeover.get(F::UserSubnetNew), 1.0);
    assert_eq!(takeover.get(F::UserCountryNew), 1.0);
    assert_eq!(takeover.get(F::LoginCountryChanged), 1.0);
    assert!((takeover.get(F::HoursSinceLastLogin) - 2.0).abs() < 1e-9);
    assert_eq!(takeover.get(F::ImpossibleTravel), 1.0);
    assert_eq!(takeover.get(F::UserLogins24h), 1.0);
    let home = &f[3];
    assert_eq!((home.get(F::LoginCountryChanged), home.get(F::ImpossibleTravel)), (1.0, 0.0));
    assert_eq!(home.get(F::UserCountryNew), 0.0);
    assert_eq!(home.get(F::UserLogins24h), 2.0);
}

#[tokio::test]
async fn mule_fan_in_and_new_payee_then_transfer() {
    let stack = Stack::start();
    let mut s = Script::default();
    // Six victims pay the same mule account within the day.
    for i in 0..6 {
        let e = s.push(i * HOUR, &format!("v{i}"), Some(&format!("payer{i}")), "transfer", "81.2.69.20");
        e.payee_id = Some("mule-1".into());
        e.amount = Some(900.0);
    }
    // Bob pays his landlord twice, as usual.
    for (i, amount) in [(1, 400.0), (2, 800.0)] {
        let t = s.push(i * HOUR, &format!("rent{i}"), Some("bob"), "transfer", "81.2.69.30");
        (t.payee_id, t.amount) = (Some("landlord".into()), Some(amount));
    }
    // Then, a scam's victim, he adds a payee and sends money to it 90 s later, twice in the hour.
    let add = s.push(10 * HOUR, "scam", Some("bob"), "add_payee", "81.2.69.30");
    add.payee_id = Some("fresh-payee".into());
    for (i, amount) in [(0, 2_500.0), (1, 1_500.0)] {
        let t = s.push(10 * HOUR + 90 * SEC + i * MIN, "scam", Some("bob"), "transfer", "81.2.69.30");
        t.payee_id = Some("fresh-payee".into());
        t.amount = Some(amount);
    }
    let f = run(&stack, &s).await;
    assert_eq!(f[5].get(F::PayeeDistinctPayers24h), 5.0);
    assert_eq!(f[0].get(F::PayeeDistinctPayers24h), 0.0);
    let added = &f[8];
    assert_eq!((added.get(F::IsAddPayee), added.get(F::UserPayeeNew)), (1.0, 1.0));
    assert_eq!(added.get(F::UserPayeeAdds1h), 0.0, "not counting itself");
    assert_eq!(added.get(F::AmountVsUserMax30d), 0.0, "only transfers are compared");
    let first_transfer = &f[9];
    assert_eq!(first_transfer.get(F::SessionPayeeAddedHere), 1.0);
    assert_eq!(first_transfer.get(F::SessionSecsSincePayeeAdd), 90.0);
    assert_eq!(first_transfer.get(F::UserPayeeNew), 0.0, "the payee was added first");
    assert_eq!(first_transfer.get(F::UserPayeeAdds1h), 1.0);
    assert_eq!(first_transfer.get(F::UserPayeeAdds24h), 1.0);
    assert_eq!(first_transfer.get(F::Amount), 2_500.0);
    assert_eq!(first_transfer.get(F::UserTransfers30d), 2.0);
    assert_eq!(first_transfer.get(F::AmountVsUserMax30d), 2_500.0 / 800.0, "against the larger rent");
    let second = &f[10];
    assert_eq!(second.get(F::UserTransfers1h), 1.0);
    assert_eq!(second.get(F::UserTransferAmount1h), 2_500.0);
    assert_eq!(second.get(F::UserTransferAmount24h), 2_500.0 + 400.0 + 800.0);
    assert_eq!(second.get(F::AmountVsUserMax30d), 0.6, "against the first scam transfer");
}

#[tokio::test]
async fn session_cadence_separates_a_metronome_from_a_person() {
    let stack = Stack::start();
    let mut s = Script::default();
    for i in 0..12 {
        s.push(i * 2 * SEC, "bot", Some("carol"), "page_view", "198.51.100.1").user_agent =
            Some("Mozilla/5.0 HeadlessChrome/120".into());
    }
    let human_gaps = [0, 4, 31, 38, 95, 101, 180, 240, 247, 330, 338, 420];
    for g in human_gaps {
        s.push(HOUR + g * SEC, "human", Some("dave"), "page_view", "198.51.100.2");
    }
    let f = run(&stack, &s).await;
    let bot = &f[11];
    assert!(bot.get(F::SessionGapCv) < 1e-9, "equal gaps: {}", bot.get(F::SessionGapCv));
    assert_eq!(bot.get(F::SessionGapMeanS), 2.0);
    assert_eq!(bot.get(F::SessionEventsBefore), 11.0);
    assert_eq!(bot.get(F::SessionRatePerMin), 11.0);
    assert_eq!(bot.get(F::SessionAgeS), 22.0);
    assert_eq!(bot.get(F::UaAutomation), 1.0);
    let human = &f[23];
    assert!(human.get(F::SessionGapCv) > 0.4, "irregular gaps: {}", human.get(F::SessionGapCv));
    assert_eq!(human.get(F::SessionRatePerMin), 0.0, "nothing in the minute before 420 s (last at 338 s)");
    assert_eq!(human.get(F::SessionEventsBefore), 11.0);
    assert_eq!(human.get(F::UaAutomation), 0.0);
}

#[tokio::test]
async fn password_reset_then_login_then_transfer_in_one_session() {
    let stack = Stack::start();
    let mut s = Script::default();
    s.push(0, "r", Some("erin"), "password_reset", "192.0.2.7").outcome = Some(Outcome::Success);
    s.push(10 * SEC, "r2", Some("frank"), "password_reset", "192.0.2.7").outcome = Some(Outcome::Success);
    s.push(20 * SEC, "r", Some("erin"), "login", "192.0.2.7").outcome = Some(Outcome::Failure);
    s.push(30 * SEC, "r", Some("erin"), "login", "192.0.2.8").outcome = Some(Outcome::Success);
    s.push(45 * SEC, "r", Some("erin"), "page_view", "192.0.2.8").path = Some("/legal/terms".into());
    let t = s.push(2 * MIN, "r", Some("erin"), "transfer", "192.0.2.8");
    t.payee_id = Some("p".into());
    t.amount = Some(10.0);
    let f = run(&stack, &s).await;
    assert_eq!(f[1].get(F::IpPasswordResets1h), 1.0, "erin's reset came from the same IP");
    assert_eq!(f[1].get(F::UserPasswordResets1h), 0.0, "frank had none");
    let login = &f[3];
    assert_eq!(login.get(F::SessionFailedLogins), 1.0);
    assert_eq!(login.get(F::UserPasswordResets1h), 1.0);
    assert_eq!(login.get(F::UserPasswordResets24h), 1.0);
    assert_eq!(login.get(F::SessionIpChanged), 1.0);
    assert_eq!(login.get(F::SessionSecsSincePasswordReset), 30.0);
    let transfer = &f[5];
    assert_eq!(transfer.get(F::SessionHasLogin), 1.0);
    assert_eq!(transfer.get(F::SessionSecsSinceLogin), 90.0);
    assert_eq!(transfer.get(F::SessionSecsSincePasswordReset), 120.0);
    assert_eq!(transfer.get(F::SessionTermsRead), 1.0);
    assert_eq!(transfer.get(F::SessionEventsBefore), 4.0);
    assert_eq!(transfer.get(F::SessionIpChanged), 0.0);
}
