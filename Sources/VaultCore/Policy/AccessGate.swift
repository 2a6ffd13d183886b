import Foundation

/// HL7 v3 PurposeOfUse codes (value set 2.16.840.1.113883.1.11.20448, code system
/// v3-ActReason): the purposes of use a request may name.
public enum PurposeOfUse {
    public static let system = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    public static let codes: Set<String> = [
        "HMARKT", "HOPERAT", "CAREMGT", "DONAT", "FRAUD", "GOV", "HACCRED", "HCOMPL", "HDECD", "HDIRECT",
        "HDM", "HLEGAL", "HOUTCOMS", "HPRGRP", "HQUALIMP", "HSYSADMIN", "LABELING", "METAMGT", "MEMADMIN", "MILCDM",
        "PATADMIN", "PATSFTY", "PERFMSR", "RECORDMGT", "SYSDEV", "HTEST", "TRAIN", "HPAYMT", "CLMATTCH", "COVAUTH",
        "COVERAGE", "ELIGDTRM", "ELIGVER", "ENROLLM", "MILDCRG", "REMITADV", "HRESCH", "BIORCH", "CLINTRCH",
        "CLINTRCHNPC", "CLINTRCHPC", "PRECLINTRCH", "DSRCH", "POARCH", "TRANSRCH", "PATRQT", "FAMRQT", "PWATRQT",
        "SUPNWK", "PUBHLTH", "DISASTER", "THREAT", "TREAT", "CLINTRL", "COC", "ETREAT", "BTG", "ERTREAT", "POPHLTH",
    ]
}

/// An access decision and the rule that made it.
public struct AccessDecision: Sendable, Equatable {
    public var allowed: Bool
    public var rule: String
}

/// Decides whether a request may proceed. Deny by default: a request must name a valid
/// principal and a known purpose of use, and the vault's policies must allow it.
public enum AccessGate {
    /// Principal names: 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-', '@'.
    public static func isValidPrincipal(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= 64 && bytes.allSatisfy { c in
            (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 46 || c == 95 || c == 45 || c == 64
        }
    }

    /// Checks that need no policy: a valid principal name and a known purpose of use. Alone,
    /// they decide only `init`, which runs before the vault has policies.
    public static func decide(_ context: AuditContext, action: String, resource: AuditResource) -> AccessDecision {
        guard isValidPrincipal(context.principal) else {
            return AccessDecision(allowed: false, rule: "principal names use 1-64 characters A-Z a-z 0-9 . _ - @")
        }
        guard PurposeOfUse.codes.contains(context.purpose) else {
            return AccessDecision(allowed: false, rule: "purpose of use must be an HL7 PurposeOfUse code (unknown purpose is denied)")
        }
        return AccessDecision(allowed: true, rule: "known principal syntax and HL7 purpose of use")
    }

    /// The decision for a request on a vault: the checks above, then the policies in
    /// `policies/`. Policies that do not load deny everything except reading the policies,
    /// so that they can be checked and mended.
    public static func decide(_ context: AuditContext, action: String, resource: AuditResource, policies directory: String) -> AccessDecision {
        let basic = decide(context, action: action, resource: resource)
        guard basic.allowed else { return basic }
        if action == AuditAction.policyExplain {
            return AccessDecision(allowed: true, rule: "a principal may see the decision for its own request")
        }
        do {
            return try PolicySet.load(directory: directory).decide(principal: context.principal, action: action, dataset: resource.dataset,
                                                                   purpose: context.purpose)
        } catch let errors as PolicyErrors {
            if action == AuditAction.policyRead {
                return AccessDecision(allowed: true, rule: "the policy files do not load; reading them is allowed so that they can be mended")
            }
            return AccessDecision(allowed: false, rule: "the policy files do not load (\(errors.problems.count) problems; run 'shardvault policy check')")
        } catch {
            return AccessDecision(allowed: false, rule: "the policy files cannot be read (\(error))")
        }
    }
}

extension AccessGate {
    /// What the audit log says about a failed request: the kind of error and its message
    /// with every quoted value removed, and never the location. Locations and quoted values
    /// can come from the input (a FHIR Bundle's file name carries the patient's name), and
    /// no patient identifier may reach the log.
    public static func auditReason(for error: any Error) -> String {
        guard let error = error as? VaultError else { return "internal error" }
        var out = ""
        var quote: Character?
        for c in error.message {
            if let q = quote {
                if c == q { quote = nil; out.append("…"); out.append(c) }
            } else {
                out.append(c)
                if c == "'" || c == "\"" { quote = c }
            }
        }
        if quote != nil { out.append("…") }
        return "\(error.code.name): \(out)"
    }
}

extension Vault {
    /// Decides `action` on `resource` for this command's principal and purpose, and records
    /// the decision durably before returning. A denied request throws permission denied
    /// (exit 77) after its entry is on disk.
    public func authorize(_ action: String, resource: AuditResource = AuditResource()) throws {
        var decision = AccessGate.decide(audit.context, action: action, resource: resource, policies: layout.policies)
        // An unknown dataset is denied like an unknown principal (only ingest creates one).
        if decision.allowed, action != AuditAction.ingest, action != AuditAction.policyExplain, let dataset = resource.dataset,
           (try? Vault.validateDatasetName(dataset)) == nil || !FileIO.isDirectory(layout.datasetDirectory(dataset)) {
            decision = AccessDecision(allowed: false, rule: "deny by default: unknown dataset '\(dataset)'")
        }
        try audit.append(AuditEvent(action: action, resource: resource, outcome: decision.allowed ? .success : .denied,
                                    reason: (decision.allowed ? "allowed: " : "denied: ") + decision.rule))
        guard decision.allowed else {
            throw VaultError(.permissionDenied, "\(audit.context.principal) may not \(action) for purpose '\(audit.context.purpose)': \(decision.rule)")
        }
    }

    /// Runs a command body as one audited request: the decision is recorded before the body
    /// runs, a failure of the body is recorded with its reason, and a signed checkpoint is
    /// written at the end either way.
    @discardableResult
    public func perform<T>(_ action: String, resource: AuditResource = AuditResource(), _ body: () throws -> T) throws -> T {
        do {
            try authorize(action, resource: resource)
        } catch let error as VaultError where error.code == .auditUnavailable {
            throw error // nothing can be recorded
        } catch {
            _ = try? audit.checkpoint()
            throw error
        }
        let value: T
        do {
            value = try body()
        } catch let error as VaultError where error.code == .auditUnavailable {
            throw error
        } catch {
            _ = try? audit.append(AuditEvent(action: action, resource: resource, outcome: .error, reason: AccessGate.auditReason(for: error)))
            _ = try? audit.checkpoint()
            throw error
        }
        try audit.checkpoint()
        return value
    }
}
