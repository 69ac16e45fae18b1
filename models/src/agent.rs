//! What a user agent says about the software behind it, without versions.
//!
//! Browsers update themselves every few weeks, so "Chrome/131 on Windows" and "Chrome/132 on
//! Windows" are the same customer's browser; a session that moves from that to "Safari on an
//! iPhone" mid-way, or an account that suddenly logs in from an operating system it never used,
//! is another matter. [`family`] writes `os/browser` (or `os/product` for an app or a tool:
//! `ios/bankapp`, `other/curl`).

/// Writes the agent's `os/browser` family into `out` (cleared first).
pub fn family(agent: &str, out: &mut String) {
    out.clear();
    out.push_str(os(agent));
    out.push('/');
    match browser(agent) {
        Some(b) => out.push_str(b),
        None => product(agent, out),
    }
}

fn os(a: &str) -> &'static str {
    // Order matters: iPhone agents say "like Mac OS X", Android ones say "Linux".
    const OSES: &[(&str, &str)] = &[
        ("iPhone", "ios"),
        ("iPad", "ios"),
        ("iOS", "ios"),
        ("Android", "android"),
        ("Windows", "windows"),
        ("CrOS", "chromeos"),
        ("Macintosh", "mac"),
        ("Mac OS X", "mac"),
        ("Linux", "linux"),
        ("X11", "linux"),
    ];
    OSES.iter().find(|(marker, _)| a.contains(marker)).map_or("other", |(_, os)| os)
}

fn browser(a: &str) -> Option<&'static str> {
    // Order matters: Edge and Opera also say Chrome, Chrome also says Safari, headless Chrome
    // says Chrome too.
    const BROWSERS: &[(&str, &str)] = &[
        ("HeadlessChrome", "headless-chrome"),
        ("Edg", "edge"),
        ("OPR/", "opera"),
        ("SamsungBrowser", "samsung"),
        ("Firefox/", "firefox"),
        ("FxiOS", "firefox"),
        ("CriOS", "chrome"),
        ("Chrome/", "chrome"),
        ("Safari/", "safari"),
    ];
    if !a.starts_with("Mozilla/") {
        return None;
    }
    let found = BROWSERS.iter().find(|(marker, _)| a.contains(marker)).map(|(_, b)| *b);
    Some(found.unwrap_or(if a.contains("AppleWebKit") { "webkit" } else { "mozilla" }))
}

/// The agent's first product name, lower-cased, letters, digits and `-._` only, at most 32
/// characters (an app's or a tool's name: `BankApp/5.2 (iPhone)`, `python-requests/2.32`).
fn product(a: &str, out: &mut String) {
    let name = a.split(['/', ' ', '(', ';']).next().unwrap_or("");
    let kept = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-._".contains(*c)).take(32);
    let before = out.len();
    out.extend(kept.map(|c| c.to_ascii_lowercase()));
    if out.len() == before {
        out.push_str("unknown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(a: &str) -> String {
        let mut s = String::from("left over");
        family(a, &mut s);
        s
    }

    #[test]
    fn a_browser_update_keeps_its_family_and_another_browser_or_system_does_not() {
        let chrome = |v: &str| {
            format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v} Safari/537.36"
            )
        };
        assert_eq!(fam(&chrome("131.0")), "windows/chrome");
        assert_eq!(fam(&chrome("131.0")), fam(&chrome("142.0.7000.1")));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(fam(iphone), "ios/safari");
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
        assert_eq!(fam(mac), "mac/safari");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0";
        assert_eq!(fam(edge), "windows/edge");
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36";
        assert_eq!(fam(android), "android/chrome");
        assert_eq!(
            fam("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"),
            "windows/firefox"
        );
        let headless =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36";
        assert_eq!(fam(headless), "linux/headless-chrome");
    }

    #[test]
    fn apps_and_tools_are_known_by_their_product_name() {
        assert_eq!(fam("BankApp/5.2 (iPhone; iOS 17.5)"), "ios/bankapp");
        assert_eq!(fam("BankApp/5.3 (Android 14)"), "android/bankapp");
        assert_eq!(fam("python-requests/2.32"), "other/python-requests");
        assert_eq!(fam("curl/8.5.0"), "other/curl");
        assert_eq!(fam(""), "other/unknown");
        assert_eq!(fam("%%%:/x"), "other/unknown", "no usable name");
        assert_eq!(fam(&"A".repeat(500)).len(), "other/".len() + 32, "an attacker's name is cut");
    }
}
