"""SMS providers behind :class:`callcenter.sms.ports.SmsProvider`: console, Kannel, Twilio (edge)."""
