//! A guest that wants more than wasmraft offers: its world is wasmraft's `state-machine` plus an
//! import of `evil:net/socket`, a made-up network interface. Apart from that it is an ordinary,
//! working guest, so the only reason for a host to refuse it is the extra import. wasmraft must
//! refuse it when it loads the guest, before it serves anything, with an error that says the
//! guest imports something wasmraft does not provide.
//!
//! Built with wit-bindgen directly (not the SDK, whose world is exactly `state-machine`), and made
//! a component by the same builder as every other guest (`tests/build.rs`).
//!
//! `apply("connect <host>")` calls the socket; every other command returns its own bytes.

wit_bindgen::generate!({
    path: "../../../proto/wit",
    inline: "
        package evil:net;

        interface socket {
            connect: func(host: string) -> u32;
        }

        world overreaching {
            include wasmraft:guest/state-machine@0.1.0;
            import socket;
        }
    ",
    world: "evil:net/overreaching",
    generate_all,
});

use evil::net::socket;

struct Overreach;

impl Guest for Overreach {
    fn info() -> GuestInfo {
        GuestInfo { name: "overreach".into(), version: "0.1.0".into(), apis: vec!["wasmraft.test.overreach".into()] }
    }

    fn apply(_ctx: ApplyContext, command: Vec<u8>) -> Result<Vec<u8>, String> {
        match command.strip_prefix(b"connect ") {
            // The call keeps the import in the core module, so the component really imports it.
            Some(host) => {
                let host = String::from_utf8_lossy(host);
                Ok(socket::connect(&host).to_string().into_bytes())
            }
            None => Ok(command),
        }
    }

    fn query(request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(request)
    }

    fn migrate(_from: GuestInfo) -> Result<(), String> {
        Ok(())
    }
}

export!(Overreach);
