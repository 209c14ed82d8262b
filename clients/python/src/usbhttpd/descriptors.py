"""Descriptors parsed from the bytes the device sent (GET …/descriptors/raw), the way
libusb parses them (libusb_get_config_descriptor), so that PyUSB sees exactly what its
libusb1 backend would: interfaces grouped by number with their alternate settings in order,
and every class- or vendor-specific descriptor kept as the `extra_descriptors` of the
configuration, alternate setting or endpoint it follows."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import List

DEVICE, CONFIGURATION, INTERFACE, ENDPOINT = 1, 2, 4, 5


@dataclass
class EndpointDescriptor:
    bLength: int
    bDescriptorType: int
    bEndpointAddress: int
    bmAttributes: int
    wMaxPacketSize: int
    bInterval: int
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: List[int] = field(default_factory=list)


@dataclass
class InterfaceDescriptor:
    bLength: int
    bDescriptorType: int
    bInterfaceNumber: int
    bAlternateSetting: int
    bNumEndpoints: int
    bInterfaceClass: int
    bInterfaceSubClass: int
    bInterfaceProtocol: int
    iInterface: int
    endpoints: List[EndpointDescriptor] = field(default_factory=list)
    extra_descriptors: List[int] = field(default_factory=list)


@dataclass
class ConfigurationDescriptor:
    bLength: int
    bDescriptorType: int
    wTotalLength: int
    bNumInterfaces: int
    bConfigurationValue: int
    iConfiguration: int
    bmAttributes: int
    bMaxPower: int
    # interfaces[i] is the i-th interface's alternate settings.
    interfaces: List[List[InterfaceDescriptor]] = field(default_factory=list)
    extra_descriptors: List[int] = field(default_factory=list)


@dataclass
class DeviceDescriptor:
    bLength: int
    bDescriptorType: int
    bcdUSB: int
    bDeviceClass: int
    bDeviceSubClass: int
    bDeviceProtocol: int
    bMaxPacketSize0: int
    idVendor: int
    idProduct: int
    bcdDevice: int
    iManufacturer: int
    iProduct: int
    iSerialNumber: int
    bNumConfigurations: int


def parse(raw: bytes):
    """(device descriptor, [configuration descriptors]) from the raw descriptors."""
    if len(raw) < 18:
        raise ValueError("no device descriptor")
    device = DeviceDescriptor(*struct.unpack_from("<BBHBBBBHHHBBBB", raw, 0))
    configurations = []
    offset = device.bLength
    while offset + 9 <= len(raw):
        total = struct.unpack_from("<H", raw, offset + 2)[0]
        if raw[offset + 1] != CONFIGURATION or total < 9:
            break
        configurations.append(parse_configuration(raw[offset:offset + total]))
        offset += total
    return device, configurations


def parse_configuration(raw: bytes) -> ConfigurationDescriptor:
    config = ConfigurationDescriptor(*struct.unpack_from("<BBHBBBBB", raw, 0))
    extra = config.extra_descriptors
    current_alt = None
    offset = config.bLength
    while offset + 2 <= len(raw):
        length, kind = raw[offset], raw[offset + 1]
        if length < 2 or offset + length > len(raw):
            break
        piece = raw[offset:offset + length]
        if kind == INTERFACE and length >= 9:
            alt = InterfaceDescriptor(*struct.unpack_from("<BBBBBBBBB", piece, 0))
            if config.interfaces and config.interfaces[-1][0].bInterfaceNumber == alt.bInterfaceNumber:
                config.interfaces[-1].append(alt)
            else:
                config.interfaces.append([alt])
            current_alt = alt
            extra = alt.extra_descriptors
        elif kind == ENDPOINT and length >= 7 and current_alt is not None:
            fields = struct.unpack_from("<BBBBHB", piece, 0)
            refresh, synch = (piece[7], piece[8]) if length >= 9 else (0, 0)
            endpoint = EndpointDescriptor(*fields, bRefresh=refresh, bSynchAddress=synch)
            current_alt.endpoints.append(endpoint)
            extra = endpoint.extra_descriptors
        else:
            extra.extend(piece)
        offset += length
    return config
