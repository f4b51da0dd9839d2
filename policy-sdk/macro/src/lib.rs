//! Attribute macros of the Postern policy SDK: `#[score]`, `#[threshold]`,
//! `#[route]`. Each keeps the function as written (so it compiles and tests
//! natively) and, when building for `wasm32`, generates the component's
//! bindings for that stage's world and exports the function through them.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{ItemFn, parse_macro_input};

/// The contract, embedded from the SDK's single WIT file.
const WIT: &str = include_str!("../../wit/postern.wit");

/// Marks the function that scores messages: `fn(&ScoreInput) -> Vec<Symbol>`
/// (or `Result<Vec<Symbol>, E>`).
#[proc_macro_attribute]
pub fn score(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Stage::Score)
}

/// Marks the function that classifies scored messages:
/// `fn(&ThresholdInput) -> ThresholdDecision` (or a `Result` of it).
#[proc_macro_attribute]
pub fn threshold(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Stage::Threshold)
}

/// Marks the function that routes accepted messages:
/// `fn(&RouteInput) -> RouteDecision` (or a `Result` of it).
#[proc_macro_attribute]
pub fn route(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Stage::Route)
}

#[derive(Clone, Copy)]
enum Stage {
    Score,
    Threshold,
    Route,
}

fn expand(attr: TokenStream, item: TokenStream, stage: Stage) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "the stage attribute takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    let name = &func.sig.ident;
    let module = format_ident!("__postern_export_{}", name);
    let sdk = quote!(::postern_policy_sdk);
    // Uses the function on every target (no dead-code warning in a native
    // build) and checks its signature there too, with a readable error.
    let input = match stage {
        Stage::Score => quote!(#sdk::ScoreInput<'_>),
        Stage::Threshold => quote!(#sdk::ThresholdInput<'_>),
        Stage::Route => quote!(#sdk::RouteInput<'_>),
    };
    let (world, guest) = match stage {
        Stage::Score => (
            "score",
            quote! {
                impl __bindings::exports::postern::policy::scorer::Guest for Policy {
                    fn score(msg: &t::Message, envelope: t::Envelope, auth: t::Authentication,
                             workspace: t::Workspace, config: String)
                             -> Result<Vec<t::Symbol>, String> {
                        #sdk::__private::score(super::#name, msg, envelope, auth, workspace, config)
                    }
                }
            },
        ),
        Stage::Threshold => (
            "threshold",
            quote! {
                impl __bindings::exports::postern::policy::thresholder::Guest for Policy {
                    fn classify(msg: &t::Message, score: f64, symbols: Vec<t::Symbol>,
                                auth: t::Authentication, workspace: t::Workspace, config: String)
                                -> Result<t::ThresholdDecision, String> {
                        #sdk::__private::threshold(super::#name, msg, score, symbols, auth, workspace, config)
                    }
                }
            },
        ),
        Stage::Route => (
            "route",
            quote! {
                impl __bindings::exports::postern::policy::router::Guest for Policy {
                    fn route(msg: &t::Message, envelope: t::Envelope, workspace: t::Workspace,
                             score: f64, symbols: Vec<t::Symbol>, config: String)
                             -> Result<t::RouteDecision, String> {
                        #sdk::__private::route(super::#name, msg, envelope, workspace, score, symbols, config)
                    }
                }
            },
        ),
    };
    quote! {
        #func

        const _: () = {
            let _: fn(&#input) -> _ = #name;
        };

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod #module {
            use #sdk::wit::postern::policy::types as t;
            mod __bindings {
                #sdk::__private::wit_bindgen::generate!({
                    inline: #WIT,
                    world: #world,
                    with: { "postern:policy/types@0.1.0": ::postern_policy_sdk::wit::postern::policy::types },
                    runtime_path: "::postern_policy_sdk::__private::wit_bindgen::rt",
                });
            }
            struct Policy;
            #guest
            __bindings::export!(Policy with_types_in __bindings);
        }
    }
    .into()
}
