"""Built-in blocks, written in the description language itself."""

PRELUDE = """
block separable(out_channels, kernel_size=3, stride=1, padding=kernel_size//2, dilation=1, bias=true):
    depthwise kernel_size=kernel_size stride=stride padding=padding dilation=dilation bias=bias
    conv2d out_channels kernel_size=1 bias=bias
"""
