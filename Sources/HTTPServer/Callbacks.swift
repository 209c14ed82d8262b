import CMicroHTTPD
import Glibc
import LinuxSystem

// The C entry points libmicrohttpd calls on its own thread. They live outside main.swift
// on purpose: closures there inherit MainActor isolation and trap on a foreign thread.

/// MHD_AccessHandlerCallback: called for the headers, for each piece of body, and once more
/// when the body is complete (and again after a resume).
let accessHandler: MHD_AccessHandlerCallback = {
    cls, connection, url, method, version, uploadData, uploadDataSize, conCls in
    guard let cls, let connection, let url, let method, let uploadDataSize, let conCls else { return MHD_Result.NO }
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    // Strings only for the first call (the headers); later calls need none.
    let first = conCls.pointee == nil
    return core.handle(
        connection: connection, url: first ? String(cString: url) : "", method: first ? String(cString: method) : "",
        version: first ? version.map { String(cString: $0) } ?? "" : "",
        uploadData: uploadData, uploadDataSize: uploadDataSize, conCls: conCls)
}

/// MHD_RequestCompletedCallback: the request is over (sent, failed or abandoned).
let requestCompleted: MHD_RequestCompletedCallback = { cls, _, conCls, termination in
    guard let cls, let conCls, let pointer = conCls.pointee else { return }
    conCls.pointee = nil
    let exchange = Unmanaged<Exchange>.fromOpaque(pointer).takeRetainedValue()
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    core.completed(exchange, termination: termination)
}

/// MHD_AcceptPolicyCallback: whether a new connection may come in (its client holds fewer than
/// the per-client cap: ``ClientConnections``); refused, libmicrohttpd closes it at once.
let acceptPolicy: MHD_AcceptPolicyCallback = { cls, address, _ in
    guard let cls, let peer = peerEndpoint(address) else { return MHD_Result.YES }
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    return core.clients.admit(peer) ? MHD_Result.YES : MHD_Result.NO
}

/// The address and port of a socket address (IPv4 or IPv6), nil for another family.
func peerEndpoint(_ address: UnsafePointer<sockaddr>?) -> SocketOwner.Endpoint? {
    var bytes = [UInt8](repeating: 0, count: 16)
    var port: UInt16 = 0
    let length = usbhttpd_sockaddr_parts(address, &bytes, &port)
    guard length > 0 else { return nil }
    return SocketOwner.Endpoint(address: Array(bytes.prefix(Int(length))), port: port)
}

/// MHD_NotifyConnectionCallback: a connection started or closed; its socket context holds
/// its ``ConnectionWatch``, which knows the client it counts for.
let connectionNotify: MHD_NotifyConnectionCallback = { cls, connection, socketContext, event in
    guard let cls, let socketContext else { return }
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    switch event {
    case MHD_ConnectionNotificationCode.CONNECTION_NOTIFY_STARTED:
        guard let connection else { return }
        let fd = usbhttpd_mhd_connection_fd(connection)
        guard fd >= 0, let watch = ConnectionWatch.start(socket: .init(rawValue: fd), loop: core.loop, logger: core.logger)
        else { return }
        watch.client = peerEndpoint(usbhttpd_mhd_client_sockaddr(connection)).flatMap { core.clients.started($0) }
        socketContext.pointee = Unmanaged.passRetained(watch).toOpaque()
    default:
        guard let pointer = socketContext.pointee else { return }
        socketContext.pointee = nil
        let watch = Unmanaged<ConnectionWatch>.fromOpaque(pointer).takeRetainedValue()
        if let client = watch.client { core.clients.closed(client) }
        watch.closed()
    }
}

/// MHD_ContentReaderCallback of streamed responses; `cls` is their ``StreamResponse``.
let streamReader: MHD_ContentReaderCallback = { cls, _, buffer, max in
    guard let cls, let buffer else { return usbhttpd_mhd_reader_end_with_error }
    return Unmanaged<StreamResponse>.fromOpaque(cls).takeUnretainedValue().read(into: buffer, max: max)
}

/// MHD_ContentReaderFreeCallback of streamed responses: releases the ``StreamResponse``.
let streamFreed: MHD_ContentReaderFreeCallback = { cls in
    guard let cls else { return }
    Unmanaged<StreamResponse>.fromOpaque(cls).takeRetainedValue().freed()
}

/// MHD_UpgradeHandler: the 101 is out; the socket (plain HTTP) is the WebSocket's. `cls` is the
/// server core, `reqCls` the request's ``Exchange`` (libmicrohttpd's `con_cls`).
let upgradeHandler: MHD_UpgradeHandler = { cls, _, reqCls, extraIn, extraInSize, socket, handle in
    guard let cls, let handle else { return }
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    guard let reqCls else {
        _ = usbhttpd_mhd_upgrade_close(handle)
        return
    }
    let exchange = Unmanaged<Exchange>.fromOpaque(reqCls).takeUnretainedValue()
    let extra = extraIn.map { Array(UnsafeRawBufferPointer(start: $0, count: extraInSize)) } ?? []
    core.upgraded(exchange, extraIn: extra, socket: .init(rawValue: socket), handle: UpgradeHandle(pointer: handle))
}

/// MHD_LogCallback: libmicrohttpd's own error messages, into the server's logger.
let mhdLog: MHD_LogCallback = { cls, format, arguments in
    guard let cls, let format, let arguments else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    _ = vsnprintf(&buffer, buffer.count, format, arguments)
    let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingTrailingNewlines()
    Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue().logger.warning(
        "libmicrohttpd: \(message)")
}

/// MHD_KeyValueIterator collecting pairs into the `[(String, String)]` that `cls` points to.
let collectPairs: MHD_KeyValueIterator = { cls, _, key, value in
    guard let cls, let key else { return MHD_Result.YES }
    let pairs = cls.assumingMemoryBound(to: [(name: String, value: String)].self)
    pairs.pointee.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
    return MHD_Result.YES
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var result = Substring(self)
        while result.last == "\n" || result.last == "\r" { result = result.dropLast() }
        return String(result)
    }
}
