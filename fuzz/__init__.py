"""Fuzzing harnesses for every stage that reads untrusted bytes, and hostile-capture generators
(README, "Hostile input")."""
