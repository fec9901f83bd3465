"""The outdoor shop whose traffic the benchmarks send: pages, products, browsers."""

from __future__ import annotations

PAGES = (
    ("Trail running shoes | Men | Outdoor shop", "https://shop.example.com/men/shoes/trail-running"),
    ("Waterproof hiking jacket | Women", "https://shop.example.com/women/jackets/waterproof-hiking"),
    ("Ultralight tent, 2 people | Camping", "https://shop.example.com/camping/tents/ultralight-2p"),
    ("Merino base layer | Men | Outdoor shop", "https://shop.example.com/men/base-layers/merino-250"),
)
PRODUCTS = (
    ("TRS-1042-BLU-44", "Trail shoe Skyline GTX, blue, 44", 129.9),
    ("JKT-2210-RED-M", "Hiking jacket Ridge 3L, red, M", 249.0),
    ("TNT-0077-GRN", "Ultralight tent Ember UL2, green", 389.5),
    ("BSL-0550-BLK-L", "Merino crew 250, black, L", 79.95),
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
)
