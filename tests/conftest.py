"""Shared pytest options: ``--device-address`` opts in to tests against a real instrument."""


def pytest_addoption(parser):
    parser.addoption("--device-address", default=None,
                     help="VISA resource of a real instrument for the opt-in hardware tests, e.g. "
                          "TCPIP::192.168.1.20::INSTR (profile from $PHYSNN_DEVICE_PROFILE, default physnn-emulator; "
                          "64-sample drives when the profile has no describe query)")
