//! Arbitrary mailbox words (what a VF can leave in VMBMEM) through the shared message parser:
//! no panic, and whatever parses re-encodes to words that parse to the same message.
#![no_main]

use igb_model::igb_hw::mailbox::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let words: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Ok(env) = Message::parse(&words) {
        let mut out = [0u32; 16];
        let n = env.message.emit(env.flags, &mut out);
        assert!(n >= 1 && n <= 16);
        let again = Message::parse(&out[..n]).expect("re-encoded message parses");
        assert_eq!(again.flags, env.flags);
        assert_eq!(again.message, env.message);
    }
});
