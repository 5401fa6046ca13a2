"""Deterministic, read-only verification of the booking agent's claims."""

from agents.verifier.verifier import (
    BookingVerifier,
    Claim,
    Hallucination,
    VerificationResult,
    VerifierConfig,
    booking_matches_objective,
    extract_claims,
)

__all__ = ["BookingVerifier", "Claim", "Hallucination", "VerificationResult", "VerifierConfig",
           "booking_matches_objective", "extract_claims"]
