//! Durations: any text either parses or is refused (never a panic), and a parsed value reads
//! back the same from its seconds and from its Go-style form.
#![no_main]

use iamlease::duration::Ttl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ttl) = Ttl::parse(text) else {
        return;
    };
    assert_eq!(Ttl::parse(&ttl.as_secs().to_string()).ok(), Some(ttl));
    assert_eq!(Ttl::parse(&ttl.to_go_string()).ok(), Some(ttl), "{text:?}");
});
