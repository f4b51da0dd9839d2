//! The `message` resource: the host side of the guest's lazy accessors.
//! Each accessor copies only the part asked for; the parsed message itself is
//! shared (`Arc`) and never copied per call.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::sandbox::StoreData;
use super::types::{self, Address, Attachment, Header, Link};
use crate::message::ParsedMessage;

/// Most offsets one `config-data-gather` call may ask for.
const MAX_GATHER: usize = 65_536;

/// What a `message` handle points to in a store's resource table.
pub struct MessageHandle(pub Arc<ParsedMessage>);

impl StoreData {
    fn message(&self, handle: &Resource<MessageHandle>) -> Option<&ParsedMessage> {
        self.table.get(handle).ok().map(|m| m.0.as_ref())
    }
}

impl types::Host for StoreData {
    fn config_data(&mut self) -> Option<Vec<u8>> {
        self.data.as_ref().map(|d| d.to_vec())
    }

    fn config_data_gather(&mut self, offsets: Vec<u32>) -> Option<Vec<u8>> {
        let data = self.data.as_ref()?;
        if offsets.len() > MAX_GATHER {
            return None;
        }
        offsets.iter().map(|&o| data.get(o as usize).copied()).collect()
    }
}

impl types::HostMessage for StoreData {
    fn headers(&mut self, m: Resource<MessageHandle>) -> Vec<Header> {
        self.message(&m).map(|m| m.headers.clone()).unwrap_or_default()
    }
    fn header(&mut self, m: Resource<MessageHandle>, name: String) -> Vec<String> {
        self.message(&m).map(|m| m.header(&name)).unwrap_or_default()
    }
    fn from(&mut self, m: Resource<MessageHandle>) -> Vec<Address> {
        self.message(&m).map(|m| m.from.clone()).unwrap_or_default()
    }
    fn to(&mut self, m: Resource<MessageHandle>) -> Vec<Address> {
        self.message(&m).map(|m| m.to.clone()).unwrap_or_default()
    }
    fn cc(&mut self, m: Resource<MessageHandle>) -> Vec<Address> {
        self.message(&m).map(|m| m.cc.clone()).unwrap_or_default()
    }
    fn reply_to(&mut self, m: Resource<MessageHandle>) -> Vec<Address> {
        self.message(&m).map(|m| m.reply_to.clone()).unwrap_or_default()
    }
    fn subject(&mut self, m: Resource<MessageHandle>) -> Option<String> {
        self.message(&m).and_then(|m| m.subject.clone())
    }
    fn message_id(&mut self, m: Resource<MessageHandle>) -> Option<String> {
        self.message(&m).and_then(|m| m.message_id.clone())
    }
    fn text_body(&mut self, m: Resource<MessageHandle>) -> String {
        self.message(&m).map(|m| m.text_body.clone()).unwrap_or_default()
    }
    fn html_body(&mut self, m: Resource<MessageHandle>) -> String {
        self.message(&m).map(|m| m.html_body.clone()).unwrap_or_default()
    }
    fn html_text(&mut self, m: Resource<MessageHandle>) -> String {
        self.message(&m).map(|m| m.html_text.clone()).unwrap_or_default()
    }
    fn attachments(&mut self, m: Resource<MessageHandle>) -> Vec<Attachment> {
        self.message(&m).map(|m| m.attachments.clone()).unwrap_or_default()
    }
    fn links(&mut self, m: Resource<MessageHandle>) -> Vec<Link> {
        self.message(&m).map(|m| m.links.clone()).unwrap_or_default()
    }
    fn size(&mut self, m: Resource<MessageHandle>) -> u64 {
        self.message(&m).map(|m| m.size).unwrap_or_default()
    }
    fn drop(&mut self, m: Resource<MessageHandle>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}
