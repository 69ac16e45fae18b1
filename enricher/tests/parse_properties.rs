//! The access-log parser and the routes and log-format loaders on arbitrary input: a value or
//! an error with a dead-letter reason, never a panic.

use enricher::app::DLQ_REASONS;
use enricher::weblog::{LogFormat, Routes, parse_line};
use proptest::prelude::*;

fn routes() -> Routes {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    Routes::load(&std::path::Path::new(&dir).join("../config/routes.toml")).expect("the shipped routes")
}

const LINE: &str = r#"81.2.69.10 - - [01/Nov/2026:09:05:03 +0000] "POST /login HTTP/1.1" 302 512 "-" "Mozilla/5.0" "sess-1" "dev-1" "GB""#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_are_an_event_or_a_dead_letter_reason(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (routes, format) = (routes(), "session,device,country".parse::<LogFormat>().unwrap());
        if let Err(e) = parse_line(&bytes, &format, &routes, "x".into()) {
            prop_assert!(DLQ_REASONS.contains(&e.reason()), "{e}");
        }
    }

    #[test]
    fn a_real_line_with_one_byte_changed_is_an_event_or_a_reason(at in 0..LINE.len(), byte in any::<u8>()) {
        let (routes, format) = (routes(), "session,device,country".parse::<LogFormat>().unwrap());
        let mut b = LINE.as_bytes().to_vec();
        b[at] = byte;
        match parse_line(&b, &format, &routes, "x".into()) {
            Ok(e) => prop_assert!(e.validate().is_ok()),
            Err(e) => prop_assert!(DLQ_REASONS.contains(&e.reason()), "{e}"),
        }
    }

    #[test]
    fn any_routes_text_loads_or_is_refused(text in "\\PC{0,400}") {
        let _ = Routes::parse(&text);
    }

    #[test]
    fn any_routes_like_toml_loads_or_is_refused(
        method in "\\PC{0,8}", path in "\\PC{0,30}", status in "\\PC{0,6}", kind in "\\PC{0,12}",
    ) {
        let text = format!("[[route]]\nmethod = \"{method}\"\npath = \"{path}\"\nstatus = \"{status}\"\ntype = \"{kind}\"\n");
        let _ = Routes::parse(&text);
    }

    #[test]
    fn any_log_format_setting_parses_or_is_refused(text in "\\PC{0,80}") {
        let _ = text.parse::<LogFormat>();
    }
}
