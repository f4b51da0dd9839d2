//! A scorer built against an older contract (`postern:policy@0.0.9`): the
//! host must refuse it at load time with a contract error.
#![allow(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "score" });

    use exports::postern::policy::scorer::{Guest, Symbol};

    struct Old;

    impl Guest for Old {
        fn score(subject: String) -> Vec<Symbol> {
            vec![Symbol { name: "OLD".into(), score: subject.len() as f64 }]
        }
    }

    export!(Old);
}
