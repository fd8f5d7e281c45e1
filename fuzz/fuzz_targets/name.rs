//! The name rule (`x509::name`): never panics, and whatever it accepts is one plain path
//! component that stays inside the folder it is joined to.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = x509::Name::parse(s) {
        let joined = Path::new("/pki/client").join(format!("{name}.key"));
        assert!(joined.starts_with("/pki/client"));
        assert!(joined
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
        assert_eq!(joined.components().count(), 4, "{s:?} made more than one component");
        assert!(!name.as_str().starts_with(['.', '-']));
        assert!(name.as_str().len() <= x509::name::MAX_LEN);
    }
    let _ = x509::name::check_common_name(s);
});
