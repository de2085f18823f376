package g
a if { b }
b if { a }
