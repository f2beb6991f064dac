"""Price sources behind one interface: yfinance, a CSV folder, and the offline demo market."""
