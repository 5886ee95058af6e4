//! Link settings for the Android cdylib only.
//!
//! Android's dynamic linker reads packed relocations (APS2, `--pack-dyn-relocs=android`) from
//! API level 23 on, and our minSdk is 24: the relocation table of the .so shrinks from about a
//! quarter of a megabyte to a few kilobytes in every APK per ABI. Set here rather than in
//! `.cargo/config.toml` rustflags, which a `RUSTFLAGS` from the environment (cargo-ndk sets some)
//! would replace.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("android") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--pack-dyn-relocs=android");
    }
}
