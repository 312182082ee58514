"""The UART host link: receiver, transmitter, CRC-16, the frame controller and a board-independent top level."""
