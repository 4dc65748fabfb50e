"""The record of processing activities (GDPR Art. 30), generated from the policy and the measured history."""
