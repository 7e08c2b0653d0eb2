//! Decoding the data of the event types policies look at (TCG PC Client PFP 1.05, 10.4; UEFI
//! 2.10, 10.3 device paths). Decoding is best-effort and total: data that does not decode is
//! reported without a decoded form, never an error (the digests are what the quote vouches
//! for, the data only describes them).

use serde::Serialize;

use super::claims::EventClaims;
use super::eventlog::EV_EFI_VARIABLE_DRIVER_CONFIG;
use crate::reader::Reader;
use crate::HexBytes;

/// `EFI_GLOBAL_VARIABLE` (UEFI 2.10, 3.3), the vendor GUID of SecureBoot, PK, KEK, Boot####.
pub const EFI_GLOBAL_VARIABLE: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// Longest text kept from a text event.
const MAX_TEXT_BYTES: usize = 4096;
/// Variable values up to this size are shown in full.
const MAX_SHOWN_VALUE_BYTES: usize = 64;
/// Device path nodes decoded at most.
const MAX_DEVICE_PATH_NODES: usize = 64;

/// The PFP 10.4.1 name of an event type, or its value in hex.
pub fn type_name(event_type: u32) -> String {
    let name = match event_type {
        0x0000_0000 => "EV_PREBOOT_CERT",
        0x0000_0001 => "EV_POST_CODE",
        0x0000_0002 => "EV_UNUSED",
        0x0000_0003 => "EV_NO_ACTION",
        0x0000_0004 => "EV_SEPARATOR",
        0x0000_0005 => "EV_ACTION",
        0x0000_0006 => "EV_EVENT_TAG",
        0x0000_0007 => "EV_S_CRTM_CONTENTS",
        0x0000_0008 => "EV_S_CRTM_VERSION",
        0x0000_0009 => "EV_CPU_MICROCODE",
        0x0000_000A => "EV_PLATFORM_CONFIG_FLAGS",
        0x0000_000B => "EV_TABLE_OF_DEVICES",
        0x0000_000C => "EV_COMPACT_HASH",
        0x0000_000D => "EV_IPL",
        0x0000_000E => "EV_IPL_PARTITION_DATA",
        0x0000_000F => "EV_NONHOST_CODE",
        0x0000_0010 => "EV_NONHOST_CONFIG",
        0x0000_0011 => "EV_NONHOST_INFO",
        0x0000_0012 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x0000_0013 => "EV_POST_CODE2",
        0x8000_0000 => "EV_EFI_EVENT_BASE",
        0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
        0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
        0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        0x8000_0006 => "EV_EFI_GPT_EVENT",
        0x8000_0007 => "EV_EFI_ACTION",
        0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
        0x8000_000A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        0x8000_000B => "EV_EFI_HANDOFF_TABLES2",
        0x8000_000C => "EV_EFI_VARIABLE_BOOT2",
        0x8000_000D => "EV_EFI_GPT_EVENT2",
        0x8000_0010 => "EV_EFI_HCRTM_EVENT",
        0x8000_00E0 => "EV_EFI_VARIABLE_AUTHORITY",
        0x8000_00E1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00E2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        other => return format!("{other:#010x}"),
    };
    name.to_string()
}

/// The decoded part of an event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventData {
    /// `UEFI_VARIABLE_DATA` (PFP 10.4.4): EV_EFI_VARIABLE_DRIVER_CONFIG, _BOOT, _BOOT2,
    /// _AUTHORITY.
    EfiVariable {
        /// VariableName GUID.
        guid: String,
        /// UnicodeName.
        name: String,
        /// VariableData length.
        data_len: usize,
        /// SHA-256 of VariableData.
        data_sha256: HexBytes,
        /// VariableData itself when at most 64 bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<HexBytes>,
    },
    /// `UEFI_IMAGE_LOAD_EVENT` (PFP 10.4.3): EV_EFI_BOOT_SERVICES_APPLICATION, _DRIVER,
    /// EV_EFI_RUNTIME_SERVICES_DRIVER.
    ImageLoad {
        /// ImageLocationInMemory.
        location: u64,
        /// ImageLengthInMemory.
        length: u64,
        /// ImageLinkTimeAddress.
        link_time_address: u64,
        /// The device path in UEFI text form, when it decodes.
        #[serde(skip_serializing_if = "Option::is_none")]
        device_path: Option<String>,
    },
    /// EV_SEPARATOR: 0 normally, an error value otherwise (PFP 10.4.1).
    Separator {
        /// The separator value.
        value: HexBytes,
    },
    /// Text: EV_IPL, EV_ACTION, EV_EFI_ACTION, EV_POST_CODE, EV_S_CRTM_VERSION (UCS-2).
    Text {
        /// The text, NULs removed, lossily decoded, at most 4 KiB.
        text: String,
    },
}

/// Decodes the data of `event_type`, when it is a type this module knows and decodes.
pub fn decode(event_type: u32, data: &[u8]) -> Option<EventData> {
    match event_type {
        0x8000_0001 | 0x8000_0002 | 0x8000_000C | 0x8000_00E0 => efi_variable(data),
        0x8000_0003..=0x8000_0005 => image_load(data),
        0x0000_0004 => Some(EventData::Separator {
            value: data.to_vec().into(),
        }),
        0x0000_0001 | 0x0000_0005 | 0x0000_000D | 0x8000_0007 => Some(EventData::Text {
            text: ascii_text(data),
        }),
        0x0000_0008 => Some(EventData::Text {
            text: ucs2_text(data),
        }),
        _ => None,
    }
}

/// Whether UEFI Secure Boot was enabled: the last verified EV_EFI_VARIABLE_DRIVER_CONFIG for
/// `SecureBoot` in `EFI_GLOBAL_VARIABLE` on PCR 7 whose digests are the hash of its data (PFP
/// 10.4.4, 3.3.4.8), with value 1. `None` when the log holds no such event.
pub(crate) fn secure_boot(events: &[EventClaims]) -> Option<bool> {
    events
        .iter()
        .rev()
        .filter(|e| {
            e.pcr == 7 && e.event_type_value == EV_EFI_VARIABLE_DRIVER_CONFIG && e.data_verified
        })
        .filter_map(|e| match &e.data {
            Some(EventData::EfiVariable {
                guid, name, value, ..
            }) if guid == EFI_GLOBAL_VARIABLE && name == "SecureBoot" => {
                Some(value.as_ref().is_some_and(|v| v.as_slice() == [1]))
            }
            _ => None,
        })
        .next()
}

fn efi_variable(data: &[u8]) -> Option<EventData> {
    let mut r = Reader::new("UEFI_VARIABLE_DATA", data);
    let guid = guid(&r.array::<16>().ok()?);
    let name_chars = usize::try_from(r.u64_le().ok()?).ok()?;
    let data_len = usize::try_from(r.u64_le().ok()?).ok()?;
    let name = r.bytes(name_chars.checked_mul(2)?).ok()?;
    let value = r.bytes(data_len).ok()?;
    r.finish().ok()?;
    Some(EventData::EfiVariable {
        guid,
        name: ucs2_text(name),
        data_len,
        data_sha256: crate::crypto::sha256(value).into(),
        value: (value.len() <= MAX_SHOWN_VALUE_BYTES).then(|| value.to_vec().into()),
    })
}

fn image_load(data: &[u8]) -> Option<EventData> {
    let mut r = Reader::new("UEFI_IMAGE_LOAD_EVENT", data);
    let location = r.u64_le().ok()?;
    let length = r.u64_le().ok()?;
    let link_time_address = r.u64_le().ok()?;
    let path_len = usize::try_from(r.u64_le().ok()?).ok()?;
    let device_path = r
        .bytes(path_len)
        .ok()
        .filter(|_| r.remaining() == 0)
        .and_then(device_path);
    Some(EventData::ImageLoad {
        location,
        length,
        link_time_address,
        device_path,
    })
}

/// A GUID in registry format (the first three fields are little-endian).
fn guid(b: &[u8; 16]) -> String {
    let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = *b;
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes([a0, a1, a2, a3]),
        u16::from_le_bytes([b0, b1]),
        u16::from_le_bytes([c0, c1]),
        hex::encode(rest.get(..2).unwrap_or_default()),
        hex::encode(rest.get(2..).unwrap_or_default())
    )
}

fn ascii_text(data: &[u8]) -> String {
    let data = data.get(..MAX_TEXT_BYTES).unwrap_or(data);
    String::from_utf8_lossy(data).replace('\0', "")
}

fn ucs2_text(data: &[u8]) -> String {
    let data = data.get(..MAX_TEXT_BYTES).unwrap_or(data);
    let units = data
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.last().copied().unwrap_or(0),
            ])
        })
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A UEFI device path (UEFI 2.10, 10.3) in its text form, for the node types boot loaders
/// commonly sit behind; other nodes print as `Path(type,subtype)`.
fn device_path(data: &[u8]) -> Option<String> {
    let mut r = Reader::new("EFI_DEVICE_PATH", data);
    let mut nodes = Vec::new();
    loop {
        if nodes.len() >= MAX_DEVICE_PATH_NODES {
            return None;
        }
        let node_type = r.u8().ok()?;
        let sub_type = r.u8().ok()?;
        let len = usize::from(r.u16_le().ok()?);
        let body = r.bytes(len.checked_sub(4)?).ok()?;
        if node_type == 0x7f && sub_type == 0xff {
            break;
        }
        nodes.push(device_path_node(node_type, sub_type, body));
    }
    (r.remaining() == 0).then(|| nodes.join("/"))
}

fn device_path_node(node_type: u8, sub_type: u8, body: &[u8]) -> String {
    let u16_at = |i: usize| {
        body.get(i..i + 2).map(|b| {
            u16::from_le_bytes([
                b.first().copied().unwrap_or(0),
                b.last().copied().unwrap_or(0),
            ])
        })
    };
    let u32_at = |i: usize| {
        body.get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    let guid_at = |i: usize| {
        body.get(i..i + 16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(|g| guid(&g))
    };
    let decoded = match (node_type, sub_type) {
        // ACPI: PNP0A03 / PNP0A08 are PCI root bridges.
        (0x02, 0x01) => match (u32_at(0), u32_at(4)) {
            (Some(0x0a03_41d0 | 0x0a08_41d0), Some(uid)) => Some(format!("PciRoot({uid:#x})")),
            (Some(hid), Some(uid)) => Some(format!("Acpi({hid:#x},{uid:#x})")),
            _ => None,
        },
        (0x01, 0x01) => match body {
            [function, device] => Some(format!("Pci({device:#x},{function:#x})")),
            _ => None,
        },
        (0x03, 0x02) => u16_at(0)
            .zip(u16_at(2))
            .map(|(pun, lun)| format!("Scsi({pun:#x},{lun:#x})")),
        (0x03, 0x12) => u16_at(0).map(|port| format!("Sata({port:#x})")),
        (0x03, 0x17) => u32_at(0).map(|ns| format!("NVMe({ns:#x})")),
        (0x04, 0x01) => match (u32_at(0), body.get(37), guid_at(20)) {
            (Some(partition), Some(0x02), Some(sig)) => Some(format!("HD({partition},GPT,{sig})")),
            (Some(partition), Some(_), _) => Some(format!("HD({partition},MBR)")),
            _ => None,
        },
        (0x04, 0x04) => Some(ucs2_text(body)),
        (0x04, 0x06) => guid_at(0).map(|g| format!("FvFile({g})")),
        (0x04, 0x07) => guid_at(0).map(|g| format!("Fv({g})")),
        _ => None,
    };
    decoded.unwrap_or_else(|| format!("Path({node_type},{sub_type})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_secure_boot_variable() {
        let mut data = hex::decode("61dfe48bca93d211aa0d00e098032b8c").unwrap();
        data.extend(10u64.to_le_bytes());
        data.extend(1u64.to_le_bytes());
        for c in "SecureBoot".encode_utf16() {
            data.extend(c.to_le_bytes());
        }
        data.push(1);
        let Some(EventData::EfiVariable {
            guid, name, value, ..
        }) = decode(EV_EFI_VARIABLE_DRIVER_CONFIG, &data)
        else {
            panic!("not decoded")
        };
        assert_eq!(guid, EFI_GLOBAL_VARIABLE);
        assert_eq!(name, "SecureBoot");
        assert_eq!(value.unwrap().as_slice(), [1]);
        assert_eq!(decode(EV_EFI_VARIABLE_DRIVER_CONFIG, &data[..20]), None);
    }

    #[test]
    fn decodes_a_device_path() {
        let mut path = vec![0x02, 0x01, 0x0c, 0x00];
        path.extend(0x0a03_41d0u32.to_le_bytes());
        path.extend(0u32.to_le_bytes());
        path.extend([0x01, 0x01, 0x06, 0x00, 0x00, 0x03]);
        let file: Vec<u8> = "\\EFI\\BOOT\\BOOTX64.EFI\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        path.extend([0x04, 0x04]);
        path.extend(((file.len() + 4) as u16).to_le_bytes());
        path.extend(&file);
        path.extend([0x7f, 0xff, 0x04, 0x00]);
        assert_eq!(
            device_path(&path).unwrap(),
            "PciRoot(0x0)/Pci(0x3,0x0)/\\EFI\\BOOT\\BOOTX64.EFI"
        );
        assert_eq!(device_path(&path[..path.len() - 1]), None);
        assert_eq!(device_path(&[0x04, 0x04, 0x02, 0x00]), None);
    }

    #[test]
    fn names_and_text() {
        assert_eq!(type_name(4), "EV_SEPARATOR");
        assert_eq!(type_name(0x1234), "0x00001234");
        assert_eq!(
            decode(0x0d, b"grub_cmd: ls\0"),
            Some(EventData::Text {
                text: "grub_cmd: ls".into()
            })
        );
    }
}
