//! Prints the size of the device library's state structs on this target (they hold fixed-width
//! fields only, so the figures are the same on 32-bit targets; the C ABI's const assertions
//! check that on thumbv8m).

use chunkprov_device::client::Client;
use chunkprov_device::store::Store;
use chunkprov_device::Reassembler;
use core::mem::size_of;

fn main() {
    println!("STATE reassembler {}", size_of::<Reassembler>());
    println!("STATE store {}", size_of::<Store>());
    println!("STATE client {}", size_of::<Client>());
}
