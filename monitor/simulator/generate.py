"""Synthetic fleets for benchmarks and load tests: deterministic, every field populated."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from .scenario import (
    DEFAULT_TOKEN,
    BusinessSpec,
    NumberSpec,
    Scenario,
    ScenarioError,
    WabaSpec,
    freeze,
)
from .templates import synthetic_template


def generate_scenario(
    *,
    businesses: int,
    wabas_per_business: int,
    numbers_per_waba: int,
    seed: int = 0,
    token: str = DEFAULT_TOKEN,
    templates_per_waba: int = 0,
) -> Scenario:
    """A deterministic synthetic fleet for benchmarks; every number has every field.

    Ids: business ``1`` + 14 digits, WABA ``2`` + 14 digits, number ``3`` + 15 digits; the
    same arguments always produce the same scenario. ``templates_per_waba`` message templates
    (ids ``4`` + 15 digits) are added to each WABA, mostly APPROVED/GREEN.
    """
    for name, value in (
        ("businesses", businesses),
        ("wabas_per_business", wabas_per_business),
        ("numbers_per_waba", numbers_per_waba),
        ("templates_per_waba", templates_per_waba),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScenarioError(f"{name}: expected an integer >= 0, got {value!r}")
    if max(businesses, wabas_per_business, numbers_per_waba, templates_per_waba) >= 10**6:
        raise ScenarioError("generate_scenario: each dimension must be below 1,000,000")
    if not token:
        raise ScenarioError("token: must not be empty")
    rng = random.Random(seed)
    out: list[BusinessSpec] = []
    serial = 0
    template_serial = 0
    for b in range(businesses):
        verified = b % 2 == 0
        limit = "TIER_10K" if verified else "TIER_250"
        business_id = f"1{b + 1:014d}"
        biz_fields = {
            "name": f"Synthetic Business {b + 1}",
            "verification_status": "verified" if verified else "not_verified",
            "whatsapp_business_manager_messaging_limit": limit,
        }
        wabas: list[WabaSpec] = []
        for w in range(wabas_per_business):
            waba_index = b * wabas_per_business + w + 1
            waba_id = f"2{waba_index:014d}"
            numbers: list[NumberSpec] = []
            for _ in range(numbers_per_waba):
                serial += 1
                # Every field set, the portfolio limit included (benchmarks want full specs).
                fields = _synthetic_number(rng, serial, limit)
                # Computed by the World: no overrides, the app's own URL (wiring).
                del fields["webhook_configuration"]
                numbers.append(NumberSpec(f"3{serial:015d}", freeze(fields)))
            # Verification and the portfolio limit are read from the owner (World).
            waba_fields = {
                "name": f"Synthetic WABA {waba_index}",
                "account_review_status": "APPROVED",
                "ownership_type": "SELF_OWNED",
                "status": "ACTIVE",
            }
            templates = []
            for t in range(templates_per_waba):
                template_serial += 1
                template_id, template_fields = synthetic_template(t, template_serial)
                templates.append((template_id, freeze(template_fields)))
            wabas.append(
                WabaSpec(waba_id, freeze(waba_fields), tuple(numbers), templates=tuple(templates))
            )
        out.append(BusinessSpec(business_id, freeze(biz_fields), tuple(wabas)))
    return Scenario(
        businesses=tuple(out),
        tokens=(token,),
        description=f"generated: {businesses}x{wabas_per_business}x{numbers_per_waba} seed={seed}",
    )


# No FLAGGED: that quality state has not existed since 7 Oct 2025 (facts §1.1).
_SYNTH_STATUS = ("CONNECTED",) * 16 + ("DISCONNECTED", "RESTRICTED", "PENDING", "OFFLINE")
_SYNTH_QUALITY = ("GREEN",) * 8 + ("YELLOW", "RED")
_SYNTH_HEALTH = ("AVAILABLE",) * 8 + ("LIMITED", "BLOCKED")


def synthetic_number(index: int, seed: int = 0) -> dict[str, Any]:
    """One fully populated synthetic number (used by the ``huge_page`` fault)."""
    return _synthetic_number(random.Random(seed * 1_000_003 + index), index, "TIER_10K")


_ONBOARD_FROM = 1_672_531_200  # 2023-01-01T00:00:00Z
_ONBOARD_SPAN = 3 * 365 * 86_400


def _onboarded(serial: int) -> str:
    """``last_onboarded_time`` spread over three years (to the second), Meta's format."""
    when = _ONBOARD_FROM + (serial * 7_919_993) % _ONBOARD_SPAN
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _synthetic_number(rng: random.Random, serial: int, limit: str) -> dict[str, Any]:
    quality = rng.choice(_SYNTH_QUALITY)
    return {
        "display_phone_number": (
            f"+1 {555 + serial // 10**7:03d}-{(serial // 10**4) % 1000:03d}-{serial % 10**4:04d}"
        ),
        "verified_name": f"Synthetic Line {serial}",
        "status": rng.choice(_SYNTH_STATUS),
        "quality_rating": quality,
        "quality_score": {"score": quality},
        "name_status": rng.choice(("APPROVED",) * 9 + ("DECLINED",)),
        "new_name_status": "NONE",
        "new_display_name": "",
        "throughput": {"level": rng.choice(("STANDARD", "STANDARD", "HIGH"))},
        "code_verification_status": rng.choice(("VERIFIED", "VERIFIED", "NOT_VERIFIED", "EXPIRED")),
        "platform_type": "CLOUD_API",
        "account_mode": "LIVE",
        "is_official_business_account": rng.random() < 0.1,
        "is_on_biz_app": False,
        "is_pin_enabled": serial % 25 != 0,  # most numbers have two-step verification
        "is_preverified_number": False,
        "whatsapp_business_manager_messaging_limit": limit,
        "messaging_limit_tier": limit,
        "health_status": {"can_send_message": rng.choice(_SYNTH_HEALTH)},
        "last_onboarded_time": _onboarded(serial),
        "search_visibility": "NON_VISIBLE",
        "eligibility_for_api_business_global_search": "NON_ELIGIBLE_UNDEFINED_COUNTRY",
        "username": f"synthetic_{serial}",
        "certificate": f"CERT{serial:08d}",
        "new_certificate": "",
        "country_code": "US",
        "country_dial_code": "1",
        "conversational_automation": {"enable_welcome_message": False},
        "webhook_configuration": {"application": "https://example.invalid/webhook"},
    }
