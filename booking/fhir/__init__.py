"""The FHIR R4 scheduling API under ``/fhir/`` (Argonaut Scheduling): locations, appointment
types as HealthcareService and Schedule, slots from the availability engine, appointments read,
searched, held and booked through the booking services, and a patient's minimum details."""
