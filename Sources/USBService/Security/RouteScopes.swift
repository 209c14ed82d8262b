/// The scope each route needs, in one place. nil: open to anyone (liveness, readiness, the
/// API's contract).
enum RouteScopes {
    static func required(method: String, route: String) -> Scope?? {
        table[method + " " + route]
    }

    /// Every route the API serves; a test checks that none is missing.
    static let table: [String: Scope?] = [
        "GET /healthz": .none,
        "GET /readyz": .none,
        "GET /openapi.yaml": .none,
        "GET /metrics": .read,
        "GET /v1/devices": .read,
        "GET /v1/devices/{id}": .read,
        "GET /v1/devices/{id}/descriptors/raw": .read,
        "GET /v1/devices/{id}/claims": .read,
        "GET /v1/events": .read,
        "GET /v1/wait": .read,
        "POST /v1/devices/{id}/interfaces/{interface}/claim": .transfer,
        "DELETE /v1/devices/{id}/interfaces/{interface}/claim": .transfer,
        "PUT /v1/devices/{id}/interfaces/{interface}/alt-setting": .transfer,
        "POST /v1/devices/{id}/control": .transfer,
        "GET /v1/devices/{id}/endpoints/{endpoint}/data": .transfer,
        "POST /v1/devices/{id}/endpoints/{endpoint}/data": .transfer,
        "GET /v1/devices/{id}/endpoints/{endpoint}/stream": .transfer,
        "POST /v1/devices/{id}/endpoints/{endpoint}/stream": .transfer,
        "GET /v1/devices/{id}/endpoints/{endpoint}/iso": .transfer,
        "POST /v1/devices/{id}/endpoints/{endpoint}/iso": .transfer,
        "POST /v1/devices/{id}/endpoints/{endpoint}/clear-halt": .transfer,
        "POST /v1/devices/{id}/reset": .admin,
        "PUT /v1/devices/{id}/configuration": .admin,
        "POST /v1/devices/{id}/leases": .transfer,
        "GET /v1/leases": .read,
        "PUT /v1/leases/{lease}": .transfer,
        "DELETE /v1/leases/{lease}": .transfer,
    ]
}
